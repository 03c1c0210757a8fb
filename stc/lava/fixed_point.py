"""Loihi 2 fixed-point numerics as Lava's ``fixed_pt`` models compute them, in NumPy.

This module is the *independent oracle* for the lava-sim executor: it never imports Lava.
Sources: shared/reference/lava.md ("Lava's fixed-point CUBA LIF"), lava-nc 0.10
``lava.proc.lif.models.AbstractPyLifModelFixed`` (24-bit u wraps, 24-bit v saturates,
decays round toward zero, ``du = iDecay - 1`` with ``ds_offset = 1``), and
``lava.utils.weightutils`` (8-bit weight mantissa; mixed-sign weights lose their LSB).

Per step, for a layer with integer synaptic input ``a`` (units of weight LSBs):

    u = trunc(u * (4096 - iDecay) / 4096) + (a << 6)      (24-bit wrap)
    v = trunc(v * (4096 - vDecay) / 4096) + u + (bias << 6) (24-bit saturate)
    s = v > (vThMant << 6);  v = 0 where s
"""

from __future__ import annotations

import numpy as np

DECAY_SHIFT = 12
DECAY_UNITY = 1 << DECAY_SHIFT
ACT_SHIFT = 6
BIAS_EXP = 6  # netx maps an HDF5 ``bias`` to bias_mant with bias_exp = 6
MAX_UV = 1 << 23
MAX_VTH_MANT = (1 << 17) - 1  # Lava LIF vth: unsigned 17-bit


def weight_range(weight: np.ndarray) -> tuple[int, int, int]:
    """(min, max, step) of the integer weights Lava keeps unchanged for this matrix's sign mode.

    Mixed-sign matrices keep even values in [-256, 254]; all-non-negative [0, 255];
    all-non-positive [-255, 0] (lava.utils.weightutils clip_weights/truncate_weights, 8 bits).
    """
    w = np.asarray(weight)
    if w.size == 0 or (w.min() >= 0):
        return 0, 255, 1
    if w.max() <= 0:
        return -255, 0, 1
    return -256, 254, 2


def check_loihi_weight(name: str, weight: object) -> np.ndarray:
    """Return ``weight`` as int64 if Lava/Loihi represents it exactly, else raise.

    Raises:
        TypeError: not an integer array (floats with fractional parts, bool, objects).
        ValueError: values outside :func:`weight_range` or odd values in a mixed-sign matrix.
    """
    w = np.asarray(weight)
    if w.dtype.kind == "f":
        if not np.all(np.isfinite(w)) or not np.all(w == np.round(w)):
            raise TypeError(f"{name} must hold integers (Loihi fixed point); got fractional "
                            "floats - quantise first (stc.passes)")
    elif w.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer array, got dtype {w.dtype}")
    w = w.astype(np.int64)
    lo, hi, step = weight_range(w)
    if w.size and (w.min() < lo or w.max() > hi or np.any(w % step)):
        raise ValueError(
            f"{name} must hold Loihi 8-bit weight mantissas: {'even ' if step == 2 else ''}"
            f"integers in [{lo}, {hi}] for this sign mode; got range [{w.min()}, {w.max()}]"
            f"{' with odd values' if step == 2 and np.any(w % 2) else ''}")
    return w


def _trunc_decay(x: np.ndarray, keep: int) -> np.ndarray:
    p = x * keep
    return np.sign(p) * (np.abs(p) >> DECAY_SHIFT)


def cuba_lif_fixed(a: np.ndarray, i_decay: int, v_decay: int, v_th_mant: int,
                   bias: np.ndarray | int = 0) -> np.ndarray:
    """Run Lava's fixed-point CUBA LIF over time.

    Args:
        a: integer synaptic input [T, ...] (already summed, W s, weight units).
        i_decay, v_decay: decays in 1/4096 units, 0..4096 (netx ``iDecay``/``vDecay``).
        v_th_mant: threshold mantissa (netx ``vThMant``), compared as ``v > v_th_mant << 6``.
        bias: bias mantissa (netx ``bias``), scaled by ``<< 6``; broadcast to a.shape[1:].

    Returns:
        spikes [T, ...] as uint8.
    """
    a = np.asarray(a, dtype=np.int64)
    u = np.zeros(a.shape[1:], np.int64)
    v = np.zeros(a.shape[1:], np.int64)
    b = np.asarray(bias, dtype=np.int64) << BIAS_EXP
    s = np.zeros(a.shape, np.uint8)
    for t in range(a.shape[0]):
        d_u = _trunc_decay(u, DECAY_UNITY - i_decay) + (a[t] << ACT_SHIFT)
        w = np.where(d_u > MAX_UV, d_u - 2 * MAX_UV, d_u)
        u = np.where(w <= -MAX_UV, d_u + 2 * MAX_UV, w)
        v = np.clip(_trunc_decay(v, DECAY_UNITY - v_decay) + u + b, -(MAX_UV - 1), MAX_UV - 1)
        fired = v > (int(v_th_mant) << ACT_SHIFT)
        v = np.where(fired, 0, v)
        s[t] = fired
    return s


def conv2d_int(x: np.ndarray, weight: np.ndarray, stride=(1, 1), padding=(0, 0),
               dilation=(1, 1), groups: int = 1) -> np.ndarray:
    """Exact integer 2-D convolution (cross-correlation, as torch) of x [T, Cin, H, W].

    weight [Cout, Cin/groups, kH, kW]; returns int64 [T, Cout, Ho, Wo]. Computed in float64,
    exact while every partial sum stays below 2**53.
    """
    import torch

    y = torch.nn.functional.conv2d(torch.from_numpy(np.asarray(x, np.float64)),
                                   torch.from_numpy(np.asarray(weight, np.float64)),
                                   stride=tuple(stride), padding=tuple(padding),
                                   dilation=tuple(dilation), groups=groups)
    return y.numpy().astype(np.int64)
