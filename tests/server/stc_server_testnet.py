"""A tiny REAL executable for the server tests: Linear -> stc.nn.LIF over T steps, in torch.

File format (test only): a safetensors file with tensor ``weight [D_out, D_in]`` and metadata
``name``, ``version``, ``T``, ``delay_ms`` and ``weight_sha256`` (hex SHA-256 of the weight's
bytes). ``load`` rejects a file whose digest does not match, the way a bundle loader rejects a
tampered bundle.

Weights are multiples of 1/4 and test inputs small integers, so the float32 matmul is exact in
any summation order: a batched run gives bit-identical rows to per-sample runs.

Executable protocol (CONTRIBUTING.md): inputs ``x: FP32 [-1, T, D_in]``; outputs
``spikes: FP32 [-1, T, D_out]``, ``rate: FP32 [-1, D_out]`` (mean over T) and
``count: INT64 [-1]`` (spikes per sample); ``last_spike_count`` after each infer.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file, save_file

from stc.nn.neurons import LIF

T, D_IN, D_OUT = 4, 6, 5


@dataclass(frozen=True)
class Spec:
    name: str
    datatype: str
    shape: tuple[int, ...]


class TinyLIF:
    """Linear + LIF spiking layer; ``infer({"x": [B, T, D_in]})``."""

    def __init__(self, weight: np.ndarray, name: str = "lif", version: str = "1",
                 delay_ms: float = 0.0) -> None:
        self.name, self.version = name, version
        self.weight = torch.from_numpy(np.asarray(weight, dtype=np.float32))
        self.delay_ms = delay_ms
        self.lif = LIF(tau=2.0, v_th=1.0, backend="torch")
        d_out, d_in = self.weight.shape
        self.inputs = [Spec("x", "FP32", (-1, T, d_in))]
        self.outputs = [Spec("spikes", "FP32", (-1, T, d_out)), Spec("rate", "FP32", (-1, d_out)),
                        Spec("count", "INT64", (-1,))]
        self.last_spike_count = 0
        self.calls: list[int] = []  # batch size of every infer call
        self.closed = False

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = torch.from_numpy(np.ascontiguousarray(inputs["x"], dtype=np.float32))
        self.calls.append(int(x.shape[0]))
        if self.delay_ms:
            time.sleep(self.delay_ms / 1000)
        with torch.no_grad():
            current = torch.einsum("btd,od->tbo", x, self.weight)   # [T, B, D_out]
            spikes = self.lif(current).permute(1, 0, 2).contiguous()  # [B, T, D_out]
        s = spikes.numpy()
        self.last_spike_count = int(s.sum())
        return {"spikes": s, "rate": s.mean(axis=1), "count": s.sum(axis=(1, 2)).astype(np.int64)}

    def close(self) -> None:
        self.closed = True


def make_weight(seed: int = 0) -> np.ndarray:
    """Weights in {-0.5, -0.25, ..., 1.0} (exact in float32)."""
    rng = np.random.default_rng(seed)
    return (rng.integers(-2, 5, size=(D_OUT, D_IN)) / 4).astype(np.float32)


def make_input(batch: int, seed: int = 1) -> np.ndarray:
    """Integer-valued inputs in {0, 1, 2, 3}, shape [batch, T, D_in], float32."""
    return np.random.default_rng(seed).integers(0, 4, size=(batch, T, D_IN)).astype(np.float32)


def write_model(path: str | Path, weight: np.ndarray, *, name: str = "lif",
                version: str = "1", delay_ms: float = 0.0) -> Path:
    """Write the test format described above; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    w = np.ascontiguousarray(weight, dtype=np.float32)
    save_file({"weight": w}, str(path), metadata={
        "name": name, "version": version, "T": str(T), "delay_ms": str(delay_ms),
        "weight_sha256": hashlib.sha256(w.tobytes()).hexdigest()})
    return path


def load(path: str | Path) -> TinyLIF:
    """Load the test format; raises ValueError if the weight digest does not match."""
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    weight = load_file(str(path))["weight"]
    if hashlib.sha256(weight.tobytes()).hexdigest() != meta["weight_sha256"]:
        raise ValueError(f"{path}: weight digest mismatch")
    return TinyLIF(weight, meta["name"], meta["version"], float(meta["delay_ms"]))
