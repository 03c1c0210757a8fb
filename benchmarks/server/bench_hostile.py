"""Good clients next to hostile ones: does ``stc serve`` keep serving them? (CPU figures)

A real ``.stcb`` bundle (Linear 64->128, LIF, Linear 128->10, LIF; T=4) is served by ``stc serve``
in its OWN process (default settings: max batch 8, queue 256, 32 handler threads, 127.0.0.1),
so its resident memory (VmRSS) is the server's alone. This process then runs, back to back
against that one server, ``--rounds`` times alternating (so both conditions see the same drift
of the shared machine's load):

  1. clean: 64 good client threads, closed loop, batch-1 ModelInfer (raw tensors), for S s;
  2. hostile: the same 64 good clients for S s, plus hostile threads:
     - NaN: requests with a NaN in the input;
     - oversize: 4,000-row requests (1 MB; more rows than the max batch);
     - idle uploads: Upload streams that send one chunk and then nothing (8 at a time);
     - cancellations: requests cancelled right after sending, and 1 ms deadlines;
     - label flood: requests for ever new model names.

Every good answer is compared with an in-process ``load_bundle(...).infer`` of the same input.
Targets (issue 13): zero failed good requests, server RSS growth < 100 MB (from the start of the
first hostile phase to the largest sample after it), good p99 (pooled over the rounds) within
2x of the clean phases' p99.

Usage: python -m benchmarks.server.bench_hostile [--seconds 20] [--rounds 2]
       [--out benchmarks/results]
Writes <out>/server_hostile_cpu.json and <out>/server_hostile_cpu.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from benchmarks.server.bench_server import D_IN, build_bundle

GOOD_CLIENTS = 64
HOSTILE_PAUSE_S = 0.02  # each hostile thread sleeps this long between attacks


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _start_server(repo: Path, log: Path) -> tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "stc.cli.main", "serve", "--repository", str(repo),
           "--port", "0"]
    err = open(log, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"stc serve exited: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("stc serve did not start")


def _request(pb, model: str, x: np.ndarray):
    req = pb.ModelInferRequest(model_name=model)
    req.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(np.ascontiguousarray(x, "<f4").tobytes())
    return req


def _good(port: int, seconds: float, inputs: list, wants: list, out: dict, i: int) -> None:
    import grpc
    from stc.proto import inference_pb2 as pb

    from stc.client import Client

    lat, fails = [], []
    reqs = [_request(pb, "bench", x) for x in inputs]
    with Client(f"127.0.0.1:{port}", timeout=30) as c:
        k = i
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            j = k % len(reqs)
            k += 1
            t0 = time.perf_counter()
            try:
                resp = c.inference.ModelInfer(reqs[j], timeout=30)
                lat.append(time.perf_counter() - t0)
                got = np.frombuffer(resp.raw_output_contents[0], "<f4")
                if not np.array_equal(got, wants[j].ravel()):
                    fails.append("wrong result")
            except grpc.RpcError as e:
                fails.append(f"{e.code().name}: {e.details()[:120]}")
    out[i] = (lat, fails)


def _hostile(port: int, stop: threading.Event, counts: dict, lock: threading.Lock) -> list:
    import grpc
    from stc.proto import inference_pb2 as pb
    from stc.proto import stc_repository_pb2 as repo_pb

    from stc.client import Client

    def record(kind: str, code: str) -> None:
        with lock:
            counts.setdefault(kind, {}).setdefault(code, 0)
            counts[kind][code] += 1

    def call(kind: str, fn) -> None:
        with Client(f"127.0.0.1:{port}", timeout=10) as c:
            n = 0
            while not stop.is_set():
                try:
                    fn(c, n)
                    record(kind, "OK")
                except grpc.RpcError as e:
                    record(kind, e.code().name)
                except grpc.FutureCancelledError:
                    record(kind, "CANCELLED(client)")
                n += 1
                stop.wait(HOSTILE_PAUSE_S)

    nan = np.ones((1, D_IN), np.float32)
    nan[0, 3] = np.nan
    big = np.ones((4000, D_IN), np.float32)

    def nan_req(c, n):
        c.inference.ModelInfer(_request(pb, "bench", nan))

    def big_req(c, n):
        c.inference.ModelInfer(_request(pb, "bench", big), timeout=2)

    def cancel_req(c, n):
        if n % 2:
            c.inference.ModelInfer(_request(pb, "bench", np.ones((1, D_IN), np.float32)),
                                   timeout=0.001)
        else:
            f = c.inference.ModelInfer.future(_request(pb, "bench",
                                                       np.ones((1, D_IN), np.float32)))
            f.cancel()
            f.result()

    def flood_req(c, n):
        c.inference.ModelInfer(_request(pb, f"no-such-model-{n}-" + "x" * 200,
                                        np.ones((1, D_IN), np.float32)))

    def idle_upload(c, n):
        release = threading.Event()

        def chunks():
            yield repo_pb.UploadChunk(name="bench", version="9", sha256="0" * 64, data=b"PK")
            while not stop.is_set() and not release.is_set():
                stop.wait(0.1)

        try:
            c.repository.Upload(chunks(), timeout=30)
        finally:
            release.set()

    threads = [threading.Thread(target=call, args=(k, fn), daemon=True) for k, fn in
               (("nan", nan_req), ("nan", nan_req), ("oversize", big_req),
                ("cancel", cancel_req), ("label_flood", flood_req))]
    threads += [threading.Thread(target=call, args=("idle_upload", idle_upload), daemon=True)
                for _ in range(8)]
    for t in threads:
        t.start()
    return threads


def run_phase(port: int, pid: int, seconds: float, inputs, wants, hostile: bool) -> dict:
    """One phase: 64 good clients (+ hostile threads) for ``seconds``; RSS sampled at 0.5 s."""
    out: dict = {}
    counts: dict = {}
    lock = threading.Lock()
    stop = threading.Event()
    rss = [_rss_mb(pid)]
    bad = _hostile(port, stop, counts, lock) if hostile else []
    good = [threading.Thread(target=_good, args=(port, seconds, inputs, wants, out, i))
            for i in range(GOOD_CLIENTS)]
    t0 = time.monotonic()
    for t in good:
        t.start()
    while any(t.is_alive() for t in good):
        time.sleep(0.5)
        rss.append(_rss_mb(pid))
    wall = time.monotonic() - t0
    stop.set()
    for t in bad:
        t.join(15)
    time.sleep(0.5)
    rss.append(_rss_mb(pid))
    lat = np.asarray([v for lats, _ in out.values() for v in lats]) * 1e3
    fails = [f for _, fs in out.values() for f in fs]
    return {"lat_ms": lat, "hostile": hostile, "seconds": wall, "good_requests": int(lat.size),
            "good_failed": len(fails), "failures_sample": fails[:5],
            "good_req_per_s": lat.size / wall,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
            "rss_start_mb": rss[0], "rss_max_mb": max(rss), "rss_end_mb": rss[-1],
            "hostile_counts": counts}


def main(argv: list[str] | None = None) -> dict:
    """Run both phases and write the result files; returns the result dict."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results")
    ns = ap.parse_args(argv)
    from stc.runtime import load_bundle

    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        path = build_bundle(repo)
        exe = load_bundle(path, device="cpu")
        rng = np.random.default_rng(0)
        inputs = [(rng.normal(size=(1, D_IN)) * 4).astype(np.float32) for _ in range(16)]
        wants = [exe.infer({"input": x})["output"] for x in inputs]
        exe.close()
        proc, port = _start_server(repo, Path(tmp) / "serve.log")
        try:
            run_phase(port, proc.pid, 3.0, inputs, wants, hostile=False)  # warm-up
            phases = []
            for _ in range(ns.rounds):
                for bad in (False, True):
                    phases.append(run_phase(port, proc.pid, ns.seconds, inputs, wants, bad))
                    phases[-1]["order"] = len(phases)
        finally:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    import grpc
    import torch

    import stc

    def pooled(bad: bool) -> dict:
        sel = [p for p in phases if p["hostile"] == bad]
        lat = np.concatenate([p.pop("lat_ms") for p in sel])
        secs = sum(p["seconds"] for p in sel)
        return {"phases": sel, "good_requests": int(lat.size),
                "good_failed": sum(p["good_failed"] for p in sel),
                "good_req_per_s": lat.size / secs, "p50_ms": float(np.percentile(lat, 50)),
                "p99_ms": float(np.percentile(lat, 99)),
                "rss_start_mb": sel[0]["rss_start_mb"],
                "rss_max_mb": max(p["rss_max_mb"] for p in sel)}

    clean, hostile = pooled(False), pooled(True)
    later = [p for p in phases if p["hostile"] and p is not hostile["phases"][0]]
    growth = max(p["rss_max_mb"] for p in phases[phases.index(hostile["phases"][0]):]) \
        - hostile["rss_start_mb"]
    ratio = hostile["p99_ms"] / clean["p99_ms"]
    result = {
        "benchmark": "server_hostile",
        "command": "python -m benchmarks.server.bench_hostile " + shlex.join(argv or []),
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "device": f"CPU ({os.cpu_count()} cores visible, {platform.processor() or 'unknown'}); "
                  "no GPU; machine shared with other jobs",
        "load_average_at_end": os.getloadavg(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "grpcio": grpc.__version__, "numpy": np.__version__,
                     "stc": stc.__version__},
        "good_clients": GOOD_CLIENTS, "seconds_per_phase": ns.seconds, "rounds": ns.rounds,
        "clean": clean, "hostile": hostile,
        "targets": {"zero_failed_good": hostile["good_failed"] == 0 and clean["good_failed"] == 0,
                    "rss_growth_mb": growth, "rss_growth_below_100mb": growth < 100,
                    "rss_growth_later_hostile_phases_mb": [p["rss_max_mb"] - p["rss_start_mb"]
                                                           for p in later],
                    "p99_ratio_hostile_vs_clean": ratio, "p99_within_2x": ratio <= 2.0},
    }
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "server_hostile_cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "server_hostile_cpu.md").write_text(_markdown(result))
    print(_markdown(result))
    return result


def _markdown(r: dict) -> str:
    c, h, t = r["clean"], r["hostile"], r["targets"]
    phases = sorted([*c["phases"], *h["phases"]], key=lambda p: p["order"])
    rows = "\n".join(
        f"| {p['order']}: {'hostile' if p['hostile'] else 'clean'} | {p['good_requests']} | "
        f"{p['good_failed']} | {p['good_req_per_s']:.0f} | {p['p50_ms']:.2f} | "
        f"{p['p99_ms']:.2f} | {p['rss_start_mb']:.0f} | {p['rss_max_mb']:.0f} |"
        for p in phases)
    pooled = "\n".join(
        f"| all {name} phases | {p['good_requests']} | {p['good_failed']} | "
        f"{p['good_req_per_s']:.0f} | {p['p50_ms']:.2f} | {p['p99_ms']:.2f} | | |"
        for name, p in (("clean", c), ("hostile", h)))
    counts: dict = {}
    for p in h["phases"]:
        for kind, codes in p["hostile_counts"].items():
            for code, n in codes.items():
                counts.setdefault(kind, {}).setdefault(code, 0)
                counts[kind][code] += n
    attacks = "\n".join(f"| {k} | " + ", ".join(f"{code} {n}" for code, n in sorted(v.items()))
                         + " |" for k, v in sorted(counts.items()))
    load = ", ".join(f"{x:.2f}" for x in r["load_average_at_end"])
    later = ", ".join(f"{g:.1f}" for g in t["rss_growth_later_hostile_phases_mb"]) or "none"
    return f"""# stc serve under hostile clients (CPU figures)

- Device: {r['device']}; load average at end ({load}) on 2 cores shared by several jobs:
  latencies move with the other jobs' load, so compare only phases of this one run
- Versions: {', '.join(f'{k} {v}' for k, v in r['versions'].items())}
- Command: `{r['command']}` ({r['rounds']} rounds of {r['seconds_per_phase']:.0f} s clean +
  {r['seconds_per_phase']:.0f} s hostile, alternating; {r['date_utc']} UTC)
- Server: `stc serve` defaults in its own process (max batch 8, queue 256, 32 handler
  threads, 4 upload slots, 10 s upload idle timeout); bundle Linear 64->128, LIF,
  Linear 128->10, LIF; T=4
- Good clients: {r['good_clients']} closed-loop threads in the benchmark process, batch-1
  requests; each answer compared with an in-process `load_bundle(...).infer`
- Hostile threads (hostile phases): 2 NaN, 1 oversize (4,000 rows), 1 cancel / 1 ms deadline,
  1 label flood, 8 idle uploads; each pauses {HOSTILE_PAUSE_S * 1e3:.0f} ms between attacks.
  They share the benchmark process and the 2 cores with the good clients, so part of a
  hostile phase's latency is plain CPU contention.

| phase | good requests | failed | good req/s | p50 ms | p99 ms | server RSS start MB | RSS max MB |
|---|---|---|---|---|---|---|---|
{rows}
{pooled}

Hostile requests by answer (gRPC status), all hostile phases:

| attack | answers |
|---|---|
{attacks}

Targets: zero failed good requests: **{'yes' if t['zero_failed_good'] else 'NO'}**; server
RSS growth from the first hostile phase on {t['rss_growth_mb']:.1f} MB (< 100 MB:
**{'yes' if t['rss_growth_below_100mb'] else 'NO'}**; within each later hostile phase: {later}
MB); good p99 hostile / clean {t['p99_ratio_hostile_vs_clean']:.2f}x (within 2x:
**{'yes' if t['p99_within_2x'] else 'NO'}**).
"""


if __name__ == "__main__":
    main()
