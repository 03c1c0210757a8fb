"""Ahead-of-time compile of every stc Triton kernel for sm_90a (H100/H200) and sm_80 (A100).

Runs on a CPU machine: Triton's compiler and the ptxas shipped in the triton wheel need no GPU
(shared/reference/gpu.md). For each kernel configuration in ``SPECS`` it lowers the kernel to
PTX with ``triton.compile(ASTSource(...), target=GPUTarget("cuda", arch, 32))``, runs
``ptxas -arch=sm_XX -v`` on the PTX and records

- registers per thread and spill stores/loads in bytes (ptxas ``-v``),
- the widest global load and store in the PTX in bits (``ld.global.v4.b32`` = 128 bits),
- the configuration (dtypes, constexprs, num_warps, num_stages).

Pointers are compiled 16-byte aligned and the size arguments named in a spec's ``div16`` as
multiples of 16, as a real launch on torch tensors of such sizes is specialised by Triton.

Usage::

    .venv/bin/python benchmarks/aot/compile_all.py               # every config, both targets
    .venv/bin/python benchmarks/aot/compile_all.py --quick       # one config per kernel
    .venv/bin/python benchmarks/aot/compile_all.py --json out.json --md out.md

Default output: benchmarks/results/aot_sm90a_sm80.{json,md}. Exit status 1 when a compiled
kernel spills or a LIF forward has no 128-bit global load (the CI check of issue 11), 2 for bad
arguments. The kernels are imported with TRITON_INTERPRET=0 (compiling needs real
``JITFunction`` objects; run this script in its own process, never under pytest's interpreter).
"""

from __future__ import annotations

import os

if __name__ == "__main__":
    os.environ["TRITON_INTERPRET"] = "0"  # before any kernel module is imported

import argparse  # noqa: E402
import datetime  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
TARGETS = {"sm_90a": 90, "sm_80": 80}


@dataclass
class Spec:
    """One kernel configuration to compile.

    kernel: "module:attribute" of a @triton.jit (or autotuned) kernel.
    types: Triton type of every runtime argument ("*fp16", "i32", "fp32", ...).
    constexprs: value of every tl.constexpr argument.
    div16: integer arguments compiled as multiples of 16 (pointers always are).
    need_v4: the check fails unless the PTX has a 128-bit global load.
    quick: part of the --quick subset (one representative config per kernel).
    """

    name: str
    kernel: str
    types: dict[str, str]
    constexprs: dict[str, object]
    config: str
    num_warps: int = 4
    num_stages: int = 3
    div16: tuple[str, ...] = ()
    need_v4: bool = False
    quick: bool = False
    extra: dict = field(default_factory=dict)


def _lif_specs() -> list[Spec]:
    out = []
    fwd = "stc.kernels.lif.triton_lif:_lif_fwd_kernel"
    bwd = "stc.kernels.lif.triton_lif:_lif_bwd_kernel"
    from stc.kernels.lif.triton_lif import FWD_CONFIGS, bwd_config

    # fp32: every GPU autotune config; fp16 / bf16: the default one
    variants = [("fp32", c, i == 0) for i, c in enumerate(FWD_CONFIGS)]
    variants += [("fp16", FWD_CONFIGS[0], False), ("bf16", FWD_CONFIGS[0], False)]
    for dt, cfg, quick in variants:
        out.append(Spec(
            f"lif_fwd[{dt},BLOCK={cfg['BLOCK']},w={cfg['num_warps']}]", fwd,
            {"x_ptr": f"*{dt}", "v_init_ptr": "*fp32", "s_ptr": f"*{dt}", "v_last_ptr": "*fp32",
             "N": "i32", "tau": "fp32", "v_th": "fp32", "vr": "fp32"},
            {"T": 4, "BLOCK": cfg["BLOCK"], "DECAY_INPUT": True, "IS_IF": False, "HARD": True,
             "HAS_V_INIT": False},
            f"T=4 BLOCK={cfg['BLOCK']} x,s {dt}", num_warps=cfg["num_warps"],
            num_stages=cfg["num_stages"], div16=("N",), need_v4=True, quick=quick))
    for T, dt in ((4, "fp32"), (16, "fp16"), (32, "fp32"), (64, "fp16")):
        cfg = bwd_config(T, interpreted=False)
        out.append(Spec(
            f"lif_bwd[T={T},{dt}]", bwd,
            {"x_ptr": f"*{dt}", "v_init_ptr": "*fp32", "gs_ptr": f"*{dt}", "gv_ptr": "*fp32",
             "gx_ptr": f"*{dt}", "gvi_ptr": "*fp32", "N": "i32", "tau": "fp32", "v_th": "fp32",
             "vr": "fp32", "alpha": "fp32"},
            {"T": T, "CHUNK": cfg["CHUNK"], "CHUNK_PAD": cfg["CHUNK_PAD"],
             "NCK_PAD": cfg["NCK_PAD"], "BLOCK": cfg["BLOCK"], "DECAY_INPUT": True,
             "IS_IF": False, "HARD": True, "DETACH": True, "SURR": 0, "HAS_V_INIT": False,
             "HAS_GS": True, "HAS_GV": True, "WANT_GVI": False},
            f"T={T} CHUNK={cfg['CHUNK']} BLOCK={cfg['BLOCK']} {dt}",
            num_warps=cfg["num_warps"], div16=("N",), quick=T in (4, 32)))
    return out


def _neuron_specs() -> list[Spec]:
    from stc.kernels.alif.triton_alif import BLOCK, NUM_WARPS, bwd_block

    out = []
    t_pad, block = bwd_block(8, 1 << 20)
    out.append(Spec(
        "alif_fwd", "stc.kernels.alif.triton_alif:_alif_fwd_kernel",
        {"x_ptr": "*fp32", "v0_ptr": "*fp32", "a0_ptr": "*fp32", "s_ptr": "*fp32",
         "v_ptr": "*fp32", "a_ptr": "*fp32", "T": "i32", "N": "i32", "tau": "fp32",
         "v_th": "fp32", "vr": "fp32", "beta": "fp32", "rho": "fp32", "omr": "fp32"},
        {"DECAY_INPUT": True, "HARD": True, "BLOCK": BLOCK}, f"BLOCK={BLOCK} fp32",
        num_warps=NUM_WARPS, div16=("N",), quick=True))
    out.append(Spec(
        "alif_bwd[T=8]", "stc.kernels.alif.triton_alif:_alif_bwd_kernel",
        {"x_ptr": "*fp32", "v0_ptr": "*fp32", "a0_ptr": "*fp32", "gs_ptr": "*fp32",
         "gv_ptr": "*fp32", "ga_ptr": "*fp32", "gx_ptr": "*fp32", "gv0_ptr": "*fp32",
         "ga0_ptr": "*fp32", "N": "i32", "tau": "fp32", "v_th": "fp32", "vr": "fp32",
         "beta": "fp32", "rho": "fp32", "omr": "fp32", "alpha": "fp32"},
        {"T": 8, "T_PAD": t_pad, "BLOCK": block, "DECAY_INPUT": True, "HARD": True,
         "DETACH": True, "SURR": 0}, f"T=8 BLOCK={block} fp32", num_warps=NUM_WARPS,
        div16=("N",), quick=True))
    out.append(Spec(
        "cuba_lif_fwd", "stc.kernels.cuba_lif.triton_cuba_lif:_cuba_lif_fwd_kernel",
        {"x_ptr": "*fp32", "i0_ptr": "*fp32", "v0_ptr": "*fp32", "s_ptr": "*fp32",
         "i_ptr": "*fp32", "v_ptr": "*fp32", "T": "i32", "N": "i32", "tau_syn": "fp32",
         "tau_mem": "fp32", "v_th": "fp32", "vr": "fp32", "v_leak": "fp32"},
        {"HARD": True, "BLOCK": BLOCK}, f"BLOCK={BLOCK} fp32", num_warps=NUM_WARPS,
        div16=("N",), quick=True))
    out.append(Spec(
        "cuba_lif_bwd[T=8]", "stc.kernels.cuba_lif.triton_cuba_lif:_cuba_lif_bwd_kernel",
        {"x_ptr": "*fp32", "i0_ptr": "*fp32", "v0_ptr": "*fp32", "gs_ptr": "*fp32",
         "gi_ptr": "*fp32", "gv_ptr": "*fp32", "gx_ptr": "*fp32", "gi0_ptr": "*fp32",
         "gv0_ptr": "*fp32", "N": "i32", "tau_syn": "fp32", "tau_mem": "fp32",
         "v_th": "fp32", "vr": "fp32", "v_leak": "fp32", "alpha": "fp32"},
        {"T": 8, "T_PAD": t_pad, "BLOCK": block, "HARD": True, "DETACH": True, "SURR": 0},
        f"T=8 BLOCK={block} fp32", num_warps=NUM_WARPS, div16=("N",), quick=True))
    from stc.kernels.cuba_fixed.reference import ACT_SHIFT, DECAY_SHIFT, MAX_UV
    from stc.kernels.cuba_fixed.triton_cuba import BLOCK as FBLOCK
    from stc.kernels.cuba_fixed.triton_cuba import NUM_WARPS as FWARPS

    out.append(Spec(
        "cuba_fixed_fwd", "stc.kernels.cuba_fixed.triton_cuba:_cuba_fixed_fwd",
        {"a_ptr": "*i32", "bias_ptr": "*i64", "u0_ptr": "*i32", "v0_ptr": "*i32",
         "s_ptr": "*u8", "u_ptr": "*i32", "v_ptr": "*i32", "T": "i32", "N": "i32",
         "fu": "i32", "fv": "i32", "vth": "i32"},
        {"DSHIFT": DECAY_SHIFT, "ASHIFT": ACT_SHIFT, "MAXUV": MAX_UV, "BLOCK": FBLOCK},
        f"BLOCK={FBLOCK} int32 in, uint8 spikes", num_warps=FWARPS, div16=("N",),
        quick=True))
    return out


def _attention_specs() -> list[Spec]:
    from stc.kernels.attention._launch import (
        ACC_IEEE,
        ACC_SINGLE,
        ACC_SPLIT,
        OP_BF16,
        OP_FP16,
        OP_IEEE,
    )
    from stc.kernels.attention.dsformer import triton_dsformer as dsf
    from stc.kernels.attention.sdsa import triton_sdsa as sd
    from stc.kernels.attention.ssa import triton_ssa as ss

    strided = ("stride_t", "stride_b", "stride_h", "stride_n")
    op_name = {OP_FP16: "fp16 dot", OP_BF16: "bf16 dot", OP_IEEE: "IEEE fp32 dot"}
    acc_name = {ACC_SINGLE: "", ACC_SPLIT: ", KV/S hi-lo split", ACC_IEEE: ", 2nd dot IEEE"}
    out = []

    def strides(*prefixes):
        return {f"{p}{s}": "i32" for p in prefixes for s in strided}

    def div(*prefixes):
        return tuple(f"{p}{s}" for p in prefixes for s in strided)

    qkvo = ("q_", "k_", "v_", "o_")
    # (input dtype, d, OP, ACC, quick): fp16 / bf16 spikes on tensor cores, fp32 spikes
    # declared binary (fp16 operands), graded counts (split), undeclared fp32 (IEEE)
    # every autotune config of the first (fp16, d = 64) and of the IEEE / d = 128 plans
    variants = []
    for dt, d, op, acc, quick, all_cfgs in (("fp16", 64, OP_FP16, ACC_SINGLE, True, True),
                                            ("bf16", 64, OP_BF16, ACC_SINGLE, False, False),
                                            ("fp32", 64, OP_FP16, ACC_SINGLE, False, False),
                                            ("fp16", 64, OP_FP16, ACC_SPLIT, False, True),
                                            ("fp32", 64, OP_IEEE, ACC_SINGLE, False, True),
                                            ("fp16", 32, OP_FP16, ACC_SINGLE, False, False),
                                            ("fp16", 128, OP_FP16, ACC_SINGLE, False, True)):
        cfgs = ss.ssa_configs(d, op) if all_cfgs else ss.ssa_configs(d, op)[:1]
        for i, c in enumerate(cfgs):
            variants.append((dt, d, op, acc, quick and i == 0,
                             {**c, "BLOCK_D": ss.block_dim(d)}))
    for dt, d, op, acc, quick, cfg in variants:
        out.append(Spec(
            f"ssa_fwd[{dt},d={d},{op_name[op]}{acc_name[acc]},BLOCK_N={cfg['BLOCK_N']},"
            f"w={cfg['num_warps']},s={cfg['num_stages']}]",
            "stc.kernels.attention.ssa.triton_ssa:_ssa_fwd_kernel",
            {**{f"{p}ptr": f"*{dt}" for p in qkvo}, **strides(*qkvo),
             "B": "i32", "H": "i32", "N": "i32", "scale": "fp32"},
            {"D": d, "BLOCK_N": cfg["BLOCK_N"], "BLOCK_D": cfg["BLOCK_D"], "OP": op, "ACC": acc},
            f"d={d} BLOCK_N={cfg['BLOCK_N']}, {dt} in/out", num_warps=cfg["num_warps"],
            num_stages=cfg["num_stages"], div16=div(*qkvo), quick=quick))
    for dt, d, quick in (("fp16", 64, True), ("fp32", 32, False), ("bf16", 64, False)):
        cfg = sd.sdsa_config(d, interpreted=False)
        out.append(Spec(
            f"sdsa_kv[{dt},d={d}]", "stc.kernels.attention.sdsa.triton_sdsa:_sdsa_kv_kernel",
            {"k_ptr": f"*{dt}", "v_ptr": f"*{dt}", "p_ptr": "*fp32", **strides("k_", "v_"),
             "B": "i32", "H": "i32", "N": "i32"},
            {"D": d, "BLOCK_N": cfg["BLOCK_N"], "BLOCK_D": cfg["BLOCK_D"]},
            f"d={d} BLOCK_N={cfg['BLOCK_N']}, {dt} in", num_warps=cfg["num_warps"],
            div16=div("k_", "v_"), quick=quick))
        out.append(Spec(
            f"sdsa_out[{dt},d={d}]", "stc.kernels.attention.sdsa.triton_sdsa:_sdsa_out_kernel",
            {"q_ptr": f"*{dt}", "p_ptr": "*fp32", "o_ptr": f"*{dt}", **strides("q_", "o_"),
             "T": "i32", "B": "i32", "H": "i32", "N": "i32", "tau": "fp32", "v_th": "fp32",
             "v_reset": "fp32"},
            {"D": d, "BLOCK_N": cfg["BLOCK_N"], "BLOCK_D": cfg["BLOCK_D"]},
            f"d={d} BLOCK_N={cfg['BLOCK_N']}, {dt} in/out", num_warps=cfg["num_warps"],
            div16=div("q_", "o_"), quick=quick))
    # (dtype, d, MODE, NBINS, NITER, OP, ACC, quick, label)
    for dt, d, mode, nbins, niter, op, acc, quick, label in (
            ("fp16", 64, 1, 128, 1, OP_FP16, ACC_SINGLE, True, "binary, histogram 65 bins"),
            ("fp16", 64, 0, 1, 1, OP_FP16, ACC_SINGLE, False, "dense (ratio 1)"),
            ("fp32", 64, 2, 1, 11, OP_FP16, ACC_SPLIT, False, "graded 0-4, bisection"),
            ("fp16", 64, 2, 1, 24, OP_FP16, ACC_IEEE, False, "range unknown, bisection"),
            ("fp16", 16, 1, 256, 1, OP_FP16, ACC_SINGLE, False, "graded 0-3, 145 bins")):
        cfg = dsf.dsformer_config(d, nbins, acc, interpreted=False)
        out.append(Spec(
            f"dsformer_fwd[{dt},d={d},{label},{op_name[op]}{acc_name[acc]}]",
            "stc.kernels.attention.dsformer.triton_dsformer:_dsformer_fwd_kernel",
            {**{f"{p}ptr": f"*{dt}" for p in qkvo}, **strides(*qkvo),
             "T": "i32", "B": "i32", "H": "i32", "N": "i32", "WIN": "i32", "NWIN": "i32",
             "K_FULL": "i32", "K_LAST": "i32", "scale": "fp32", "S_MAX": "i32"},
            {"D": d, "BLOCK_M": cfg["BLOCK_M"], "BLOCK_N": cfg["BLOCK_N"],
             "BLOCK_D": cfg["BLOCK_D"], "MODE": mode, "NBINS": nbins, "NITER": niter,
             "OP": op, "ACC": acc},
            f"d={d} BLOCK_M={cfg['BLOCK_M']} BLOCK_N={cfg['BLOCK_N']}, {dt} in/out",
            num_warps=cfg["num_warps"], num_stages=cfg["num_stages"], div16=div(*qkvo),
            quick=quick))
    return out


def all_specs() -> list[Spec]:
    """Every kernel configuration of the report (one entry per compiled variant)."""
    return _lif_specs() + _neuron_specs() + _attention_specs()


def _jit_fn(obj):
    """The JITFunction under autotune/heuristics wrappers.

    Raises:
        RuntimeError: the kernels were imported under TRITON_INTERPRET=1 (interpreted
            functions cannot be compiled; run this script as its own process).
    """
    while type(obj).__name__ != "JITFunction":
        if type(obj).__name__ == "InterpretedFunction" or not hasattr(obj, "fn"):
            raise RuntimeError("kernels were imported under TRITON_INTERPRET=1; run "
                               "benchmarks/aot/compile_all.py in its own process")
        obj = obj.fn
    return obj


def _ptxas() -> str:
    import triton

    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "ptxas")


_LD = re.compile(r"\b(ld|st)\.global((?:\.[a-z0-9]+)*)")
_CP_ASYNC = re.compile(r"\bcp\.async\.c[ag]\.shared\.global[^,]*,[^,]*,\s*(0x[0-9a-fA-F]+|\d+)")
_BITS = re.compile(r"^[bsuf](8|16|32|64)$")


def widest_access(ptx: str) -> dict[str, int]:
    """Widest global load and store in PTX, in bits (vector width x element bits; loads
    also count ``cp.async`` global-to-shared copies)."""
    best = {"ld": 0, "st": 0}
    for op, mods in _LD.findall(ptx):
        vec, bits = 1, 0
        for m in mods.split(".")[1:]:
            if m in ("v2", "v4", "v8"):
                vec = int(m[1:])
            elif _BITS.match(m):
                bits = int(_BITS.match(m).group(1))
        best[op] = max(best[op], vec * bits)
    # loads pipelined through shared memory (num_stages > 1): cp.async of 4, 8 or 16 bytes
    for nbytes in _CP_ASYNC.findall(ptx):
        best["ld"] = max(best["ld"], 8 * int(nbytes, 0))
    return best


def ptxas_info(ptx: str, arch: str) -> dict[str, int]:
    """Registers and spill bytes of the one entry function in ``ptx`` (ptxas -v)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "k.ptx"
        src.write_text(ptx)
        res = subprocess.run([_ptxas(), f"-arch={arch}", "-v", str(src), "-o",
                              str(Path(tmp) / "k.cubin")], capture_output=True, text=True,
                             check=False)
    text = res.stdout + res.stderr
    if res.returncode != 0:
        raise RuntimeError(f"ptxas failed for {arch}: {text[-2000:]}")
    regs = re.search(r"Used (\d+) registers", text)
    spill = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", text)
    stack = re.search(r"(\d+) bytes stack frame", text)
    return {"registers": int(regs.group(1)) if regs else -1,
            "spill_stores": int(spill.group(1)) if spill else -1,
            "spill_loads": int(spill.group(2)) if spill else -1,
            "stack_frame": int(stack.group(1)) if stack else -1}


def compile_spec(spec: Spec, arch: str) -> dict:
    """Compile one spec for one target; returns the record of the report."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    mod, attr = spec.kernel.split(":")
    fn = _jit_fn(getattr(importlib.import_module(mod), attr))
    names = list(fn.arg_names)
    missing = [n for n in names if n not in spec.types and n not in spec.constexprs]
    if missing:
        raise ValueError(f"{spec.name}: no type or constexpr for arguments {missing}")
    sig = {n: ("constexpr" if n in spec.constexprs else spec.types[n]) for n in names}
    attrs = {(i,): [["tt.divisibility", 16]] for i, n in enumerate(names)
             if n not in spec.constexprs and (sig[n].startswith("*") or n in spec.div16)}
    src = ASTSource(fn=fn, signature=sig, constexprs=dict(spec.constexprs), attrs=attrs)
    t0 = time.perf_counter()
    kernel = triton.compile(src, target=GPUTarget("cuda", TARGETS[arch], 32),
                            options={"num_warps": spec.num_warps,
                                     "num_stages": spec.num_stages})
    ptx = kernel.asm["ptx"]
    info = ptxas_info(ptx, arch)
    return {"kernel": spec.name, "function": attr, "config": spec.config, "arch": arch,
            "num_warps": spec.num_warps, "num_stages": spec.num_stages,
            **info, **{f"widest_{k}_bits": v for k, v in widest_access(ptx).items()},
            "shared_bytes": int(kernel.metadata.shared), "need_v4": spec.need_v4,
            "compile_s": round(time.perf_counter() - t0, 3)}


def failures(records: list[dict]) -> list[str]:
    """The CI check: no spill anywhere; every need_v4 kernel has a 128-bit global load."""
    bad = []
    for r in records:
        if r["spill_stores"] != 0 or r["spill_loads"] != 0:
            bad.append(f"{r['kernel']} on {r['arch']}: spills {r['spill_stores']} B stores, "
                       f"{r['spill_loads']} B loads")
        if r["need_v4"] and r["widest_ld_bits"] < 128:
            bad.append(f"{r['kernel']} on {r['arch']}: widest global load "
                       f"{r['widest_ld_bits']} bits, expected 128 (v4)")
    return bad


def run(quick: bool = False, archs: tuple[str, ...] = tuple(TARGETS)) -> list[dict]:
    """Compile every spec (or the --quick subset) for each arch; returns the records."""
    records = []
    for spec in all_specs():
        if quick and not spec.quick:
            continue
        for arch in archs:
            records.append(compile_spec(spec, arch))
    return records


def to_markdown(records: list[dict], meta: dict) -> str:
    by_kernel: dict[str, dict[str, dict]] = {}
    for r in records:
        by_kernel.setdefault(r["kernel"], {})[r["arch"]] = r
    lines = [
        "# AOT compile of every stc Triton kernel: sm_90a (H100/H200) and sm_80 (A100)",
        "",
        f"Command: `{meta['command']}`  ",
        f"Date (UTC): {meta['date']}; triton {meta['triton']}, torch {meta['torch']}, "
        f"ptxas from the triton wheel ({meta['ptxas']}); host: {meta['host']} "
        f"(no GPU; compile only, shared machine, load average {meta['load']}).",
        *([meta["note"], ""] if meta.get("note") else [""]),
        "Registers per thread and spill bytes from `ptxas -v`; widest global load/store from "
        "the PTX (128 = `ld.global.v4.b32` or a 16-byte `cp.async`; TMA bulk copies are not "
        "counted). Pointers compiled 16-byte aligned, sizes named in the spec "
        "as multiples of 16 (what Triton specialises for torch tensors of such sizes).",
        "",
        "| kernel | config | warps/stages | sm_90a regs | sm_90a spill st/ld B | sm_90a ld/st bits "
        "| sm_80 regs | sm_80 spill st/ld B | sm_80 ld/st bits |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, per in by_kernel.items():
        first = next(iter(per.values()))
        cells = [name, first["config"], f"{first['num_warps']}/{first['num_stages']}"]
        for arch in TARGETS:
            r = per.get(arch)
            if r is None:
                cells += ["-", "-", "-"]
                continue
            cells += [str(r["registers"]), f"{r['spill_stores']}/{r['spill_loads']}",
                      f"{r['widest_ld_bits']}/{r['widest_st_bits']}"]
        lines.append("| " + " | ".join(cells) + " |")
    bad = failures(records)
    lines += ["", "Check (no spill; LIF forward with 128-bit loads): "
              + ("**passed**" if not bad else "**failed**: " + "; ".join(bad)), ""]
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one representative config per kernel")
    p.add_argument("--arch", action="append", choices=list(TARGETS),
                   help="target (repeatable; default: sm_90a and sm_80)")
    p.add_argument("--json", type=Path, default=RESULTS / "aot_sm90a_sm80.json",
                   help="JSON output file")
    p.add_argument("--md", type=Path, default=RESULTS / "aot_sm90a_sm80.md",
                   help="Markdown output file ('-' for none)")
    p.add_argument("--note", default="", help="a line added to the Markdown header")
    args = p.parse_args(argv)
    import torch
    import triton

    archs = tuple(args.arch) if args.arch else tuple(TARGETS)
    t0 = time.perf_counter()
    records = run(quick=args.quick, archs=archs)
    ver = subprocess.run([_ptxas(), "--version"], capture_output=True, text=True).stdout
    meta = {
        "command": " ".join(["python", "benchmarks/aot/compile_all.py", *(argv or sys.argv[1:])]),
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "triton": triton.__version__, "torch": torch.__version__,
        "ptxas": (re.findall(r"V[\d.]+", ver) or ["?"])[-1],
        "host": f"{platform.machine()} {os.cpu_count()} cores",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "seconds": round(time.perf_counter() - t0, 1), "note": args.note,
    }
    _atomic_write(args.json, json.dumps({"meta": meta, "records": records,
                                         "failures": failures(records)}, indent=1) + "\n")
    if str(args.md) != "-":
        _atomic_write(args.md, to_markdown(records, meta))
    bad = failures(records)
    for line in bad:
        print("FAIL:", line, file=sys.stderr)
    print(f"{len(records)} compiles in {meta['seconds']} s; "
          f"{'ok' if not bad else f'{len(bad)} failures'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
