"""The main job, end to end, on a built-in example (``make demo`` / ``python -m stc.demo``).

1. Train (or reuse) a tiny Spikformer on scikit-learn's handwritten digits (real 8x8 scans),
   and a small LIF MLP for the Loihi path.
2. Compile each into a verified ``.stcb`` bundle (the MLP also in Loihi fixed point, with its
   Lava/netx mapping under loihi/).
3. Start the OIP v2 gRPC server on localhost, send every held-out digit over gRPC, and print
   accuracy, latency percentiles and an energy estimate (paper formula, Loihi 1 estimate).
4. Run a subset through Lava's bit-accurate Loihi 2 simulator behind a second server, and check
   that its output spikes equal the runtime's fixed-point mode bit for bit.

Everything runs on the CPU (or on CUDA when present) in a few minutes; outputs go to
``runs/demo`` (delete it, or pass ``--fresh``, to retrain).
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

console = Console()

TRANSFORMER = "spikformer_tiny"
MLP_T = 4
MLP_HIDDEN = 64


@dataclass
class Timings:
    """Per-request latencies in ms."""

    ms: np.ndarray

    def pct(self, q: float) -> float:
        return float(np.percentile(self.ms, q))


def _step(title: str) -> None:
    console.rule(f"[bold]{title}")


def train_transformer(workdir: Path, seed: int):
    """Train TRANSFORMER on digits, or reuse a checkpoint from an earlier run."""
    from stc.models import create_model
    from stc.train import (
        TrainConfig,
        load_checkpoint,
        load_digits_split,
        save_checkpoint,
        train_model,
    )

    ckpt = workdir / TRANSFORMER
    if (ckpt / "config.json").is_file() and (ckpt / "model.safetensors").is_file():
        console.print(f"reusing the checkpoint in {ckpt}")
        return load_checkpoint(ckpt, backend="torch")
    from stc.cli.train import RECIPES

    torch.manual_seed(seed)
    model = create_model(TRANSFORMER, backend="torch")
    cfg = TrainConfig(seed=seed, **RECIPES[TRANSFORMER])
    result = train_model(model, load_digits_split(seed=seed), cfg)
    console.print(f"held-out accuracy after training: {result.test_accuracy:.4f}")
    save_checkpoint(model, ckpt)
    return model


def train_mlp(seed: int) -> torch.nn.Sequential:
    """A 64-MLP_HIDDEN-10 LIF network trained briefly with surrogate gradients on the digits
    as ``stc train`` gives them (float32 in [0, 1]); the fixed-point bundle takes the same
    float input (its input quantisation, not a weight edit, maps it to integers)."""
    from stc.nn import LIF
    from stc.train import load_digits_split

    torch.manual_seed(seed)
    d = load_digits_split(seed=seed)
    x = d.x_train.reshape(-1, 64)
    y = d.y_train
    net = torch.nn.Sequential(torch.nn.Linear(64, MLP_HIDDEN), LIF(backend="torch"),
                              torch.nn.Linear(MLP_HIDDEN, 10), LIF(backend="torch"))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(6):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            rate = net(x[idx].unsqueeze(0).repeat(MLP_T, 1, 1)).mean(0)
            loss = torch.nn.functional.cross_entropy(rate * 10, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def bundle_models(workdir: Path, transformer, mlp, seed: int = 0) -> Path:
    """Compile both models and write them into a server repository
    ``<repo>/<name>/<version>/model.stcb``; return the repository folder."""
    from stc.compiler import SpikeCompiler
    from stc.ir.frontends.torch import from_torch
    from stc.passes.quantize import quantize
    from stc.runtime.contract import attach_contract
    from stc.train.contract import digits_input_contract

    repo = workdir / "repository"
    for name in ("digits_spikformer", "digits_mlp"):
        (repo / name / "1").mkdir(parents=True, exist_ok=True)
    (workdir / "loihi_repository" / "digits_mlp" / "1").mkdir(parents=True, exist_ok=True)
    compiled = SpikeCompiler(target="cpu", time_steps=transformer.config.T).compile(transformer)
    attach_contract(compiled.graph, digits_input_contract())  # as stc train records it
    path = compiled.save(repo / "digits_spikformer" / "1" / "model.stcb",
                         name="digits_spikformer", version="1")
    console.print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")

    from stc.bundle import write_bundle
    from stc.lava import map_graph
    from stc.train import load_digits_split

    graph = attach_contract(from_torch(mlp, (64,), time_steps=MLP_T, readout="mean"),
                            digits_input_contract((64,)))
    d = load_digits_split(seed=seed)  # calibrate on the held-out split, as stc bundle does
    fixed, report = quantize(graph, calibration=d.x_test.reshape(-1, 64), labels=d.y_test)
    members = map_graph(fixed).members()
    path = write_bundle(repo / "digits_mlp" / "1" / "model.stcb", graph, name="digits_mlp",
                        version="1", fixed_graph=fixed, numerics="fixed",
                        extra_members=members)
    console.print(f"wrote {path} (Loihi fixed point + netx mapping: "
                  f"{', '.join(sorted(members))})")
    # the Loihi server's repository holds only what Lava can run (no attention graphs)
    shutil.copyfile(path, workdir / "loihi_repository" / "digits_mlp" / "1" / "model.stcb")
    return repo


def query(url: str, model: str, images: np.ndarray) -> tuple[np.ndarray, Timings]:
    """Send each image as its own OIP v2 ModelInfer request; return outputs and latencies."""
    from stc.client import Client

    client = Client(url)
    meta = client.metadata_of(model)
    in_name, out_name = meta["inputs"][0]["name"], meta["outputs"][0]["name"]
    outs, ms = [], []
    for img in images:
        t0 = time.perf_counter()
        res = client.infer(model, {in_name: img[None]})
        ms.append((time.perf_counter() - t0) * 1e3)
        outs.append(res[out_name][0])
    client.close()
    return np.stack(outs), Timings(np.array(ms))


def energy_table(model, images: torch.Tensor) -> Table:
    """Energy per inference: the papers' 45 nm formula and a Loihi 1 estimate, both labelled."""
    from stc.energy import counts_from_records, estimate_loihi_energy, paper_energy
    from stc.models.stats import collect

    records = collect(model, images)
    paper = paper_energy(records, precision="fp32")
    loihi = estimate_loihi_energy(counts_from_records(records), chip="loihi1")
    table = Table(title="energy per inference (estimates, not measurements)")
    table.add_column("model")
    table.add_column("mJ", justify="right")
    table.add_column("source")
    table.add_row("paper formula, 45 nm fp32 MAC/AC", f"{paper.total_mj:.4f}",
                  "Horowitz ISSCC 2014 (E_MAC 4.6 pJ, E_AC 0.9 pJ)")
    table.add_row("Loihi 1 per-op estimate", f"{loihi.total_mj:.4f}",
                  "Davies et al., IEEE Micro 2018, Table 2")
    return table


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the process exit code (0 on success)."""
    parser = argparse.ArgumentParser(prog="python -m stc.demo", description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("runs/demo"))
    parser.add_argument("--fresh", action="store_true", help="retrain instead of reusing")
    parser.add_argument("--lava-samples", type=int, default=16,
                        help="held-out samples sent through the lava-sim backend")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.fresh and args.workdir.exists():
        shutil.rmtree(args.workdir)
    args.workdir.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    start = time.perf_counter()

    from stc.server.app import InferenceServer, ServerConfig
    from stc.train import load_digits_split

    data = load_digits_split(seed=args.seed)
    x_test = data.x_test.numpy().astype(np.float32)
    y_test = data.y_test.numpy()

    _step("1. train on sklearn digits (1,797 real 8x8 scans; 20% held out)")
    transformer = train_transformer(args.workdir, args.seed)
    mlp = train_mlp(args.seed)

    _step("2. compile into verified bundles")
    repo = bundle_models(args.workdir, transformer, mlp, args.seed)

    _step("3. serve over gRPC (Open Inference Protocol v2) and query every held-out digit")
    server = InferenceServer(ServerConfig(port=0, backend="cpu", max_batch=8), repo)
    port = server.start()
    try:
        logits, lat = query(f"127.0.0.1:{port}", "digits_spikformer", x_test)
    finally:
        server.stop(grace=2.0)
    acc = float((logits.argmax(1) == y_test).mean())
    table = Table(title=f"digits_spikformer over gRPC on 127.0.0.1:{port} (backend cpu)")
    for col in ("held-out samples", "accuracy", "p50 ms", "p90 ms", "p99 ms"):
        table.add_column(col, justify="right")
    table.add_row(str(len(y_test)), f"{acc:.4f}", f"{lat.pct(50):.2f}", f"{lat.pct(90):.2f}",
                  f"{lat.pct(99):.2f}")
    console.print(table)
    console.print(energy_table(transformer, torch.from_numpy(x_test[:64])))

    _step("4. the Loihi path: fixed point on CPU vs Lava's bit-accurate simulator")
    from stc.runtime import load_bundle

    x_flat = x_test.reshape(len(x_test), 64)  # the float input the float model takes
    bundle = repo / "digits_mlp" / "1" / "model.stcb"
    loihi_repo = args.workdir / "loihi_repository"
    accs = {}
    for numerics in ("float", "fixed"):
        exe = load_bundle(bundle, device="cpu", numerics=numerics)
        (out,) = exe.infer({exe.inputs[0].name: x_flat}).values()
        accs[numerics] = float((out.argmax(1) == y_test).mean())
        if numerics == "fixed":
            fixed_out = out
        exe.close()
    n = min(args.lava_samples, len(x_flat))
    server = InferenceServer(ServerConfig(port=0, backend="lava-sim", numerics="fixed"),
                             loihi_repo)
    port = server.start()
    try:
        lava_out, lava_lat = query(f"127.0.0.1:{port}", "digits_mlp", x_flat[:n])
    finally:
        server.stop(grace=2.0)
    same = bool(np.array_equal(lava_out, fixed_out[:n]))
    table = Table(title="digits_mlp (64-64-10 LIF): float vs Loihi fixed point")
    for col in ("float acc", "fixed acc (CPU)", f"lava-sim = CPU fixed ({n} samples)",
                "lava-sim p50 ms"):
        table.add_column(col, justify="right")
    table.add_row(f"{accs['float']:.4f}", f"{accs['fixed']:.4f}",
                  "[green]bit-exact" if same else "[red]DIFFERENT", f"{lava_lat.pct(50):.0f}")
    console.print(table)
    console.print(f"demo finished in {time.perf_counter() - start:.0f} s")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
