"""Public fixed-point CUBA-LIF op: validation, then the Triton kernel or the reference."""

from __future__ import annotations

import torch

from stc.errors import check_same_device, check_tensor, check_timesteps

from .._backend import resolve_backend
from .._validate import should_validate
from .reference import MAX_UV, cuba_fixed_reference, effective_bias

INT_DTYPES = (torch.int32,)
A_LIMIT = 1 << 24      # |a| < 2**24 keeps every Lava int32 intermediate free of overflow
BIAS_LIMIT = 1 << 24   # |bias_mant * 2**bias_exp| < 2**24, same reason
VTH_MANT_MAX = (1 << 17) - 1  # Lava PyLifModelBitAcc: vth is unsigned 17-bit


def check_int(name: str, value: object, lo: int, hi: int) -> int:
    """Return ``value`` if it is a Python int in [lo, hi]; TypeError / ValueError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a Python int, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value}")
    return value


def _check_state(name: str, x: torch.Tensor | None, shape: tuple, device,
                 values: bool) -> torch.Tensor:
    if x is None:
        return torch.zeros(shape, dtype=torch.int32, device=device)
    check_tensor(name, x, dtypes=INT_DTYPES)
    if x.device != device:
        raise ValueError(f"{name} is on {x.device}; expected a's device {device}")
    if tuple(x.shape) != shape:
        raise ValueError(f"{name} must have shape a.shape[1:] = {shape}, got {tuple(x.shape)}")
    if values and x.numel() and (int(x.min()) < -MAX_UV or int(x.max()) > MAX_UV):
        raise ValueError(f"{name} must lie in the 24-bit range [-2**23, 2**23]")
    return x.contiguous()


def cuba_lif_fixed(
    a: torch.Tensor,
    du: int,
    dv: int,
    vth_mant: int,
    bias_mant: torch.Tensor | int = 0,
    bias_exp: int = 0,
    u_init: torch.Tensor | None = None,
    v_init: torch.Tensor | None = None,
    backend: str = "auto",
    validate: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loihi 2 fixed-point CUBA-LIF over T steps, bit-exact with Lava's ``fixed_pt`` LIF model.

    Per step (see ``reference.py`` for the exact integer operations):
    u = trunc(u * (4096 - du - 1) / 4096) + (a << 6) (24-bit wrap);
    v = clip(trunc(v * (4096 - dv) / 4096) + u + (bias_mant << bias_exp), +-(2**23 - 1));
    spike where v > vth_mant << 6 (strictly), then v = 0. Forward only (no autograd).

    Args:
        a: synaptic input [T, ...], int32, already aggregated (W s, in weight-mantissa units);
            |a| < 2**24. Lava's process receives a[t] at step t (a Dense layer before it adds
            its one step of delay itself).
        du: Lava LIF ``du`` register, int in [-1, 4095]; current decay per step is
            (du + 1) / 4096 (Lava's ds_offset = 1; netx maps iDecay to du = iDecay - 1, so
            du = -1 is netx's non-decaying readout current).
        dv: Lava LIF ``dv`` register, int in [0, 4096]; voltage decay dv / 4096 (dm_offset 0).
        vth_mant: threshold mantissa, int in [0, 2**17 - 1]; the effective threshold on the
            24-bit v is vth_mant << 6 (Lava ``vth``, netx ``vThMant``).
        bias_mant: int or int32 tensor broadcastable to a.shape[1:] (Lava ``bias_mant``).
        bias_exp: int; the bias added to v each step is bias_mant << bias_exp
            (>> -bias_exp, flooring, when negative). netx uses bias_exp = 6.
        u_init, v_init: initial state [...] = a.shape[1:], int32 in [-2**23, 2**23]; default 0.
        backend: "auto" | "triton" | "torch".
        validate: check the value ranges of a, the bias and the states (reads the data):
            None = only for CPU tensors (free there; no device sync on a GPU's hot path),
            True = always, False = never (stc.kernels._validate). Unchecked out-of-range
            values wrap or saturate as the integer operations do; results are then not
            Lava's.

    Returns:
        (spikes [T, ...] uint8 in {0, 1}, u_last [...] int32, v_last [...] int32).

    Raises:
        TypeError: a non-tensor or not int32; integer parameters not ints; bad state dtypes.
        ValueError: rank < 1, T = 0, values outside the ranges above (when validated),
            shape/device mismatch, unknown backend.
        RuntimeError: backend="triton" where Triton cannot run.

    Source: lava-nc 0.10 ``lava/proc/lif/models.py`` (AbstractPyLifModelFixed.subthr_dynamics,
    scale_bias; PyLifModelBitAcc.scale_threshold / spiking_activation); Davies et al.,
    "Loihi", IEEE Micro 2018 (CUBA neuron model).
    """
    check_tensor("a", a, min_dim=1, dtypes=INT_DTYPES)
    check_timesteps("a", a)
    check_int("du", du, -1, 4095)
    check_int("dv", dv, 0, 4096)
    check_int("vth_mant", vth_mant, 0, VTH_MANT_MAX)
    check_int("bias_exp", bias_exp, -24, 24)
    values = should_validate(validate, a)
    if values and a.numel() and (int(a.min()) <= -A_LIMIT or int(a.max()) >= A_LIMIT):
        raise ValueError(f"a must satisfy |a| < 2**24; got values in "
                         f"[{int(a.min())}, {int(a.max())}]")
    shape = tuple(a.shape[1:])
    if isinstance(bias_mant, torch.Tensor):
        check_tensor("bias_mant", bias_mant, dtypes=(torch.int32, torch.int64))
        check_same_device(a=a, bias_mant=bias_mant)
        try:
            bias_t = bias_mant.to(torch.int64).expand(shape)
        except RuntimeError:
            raise ValueError(f"bias_mant of shape {tuple(bias_mant.shape)} does not broadcast "
                             f"to a.shape[1:] = {shape}") from None
    else:
        check_int("bias_mant", bias_mant, -(1 << 24), 1 << 24)
        bias_t = torch.full(shape, bias_mant, dtype=torch.int64, device=a.device)
    bias = effective_bias(bias_t, bias_exp).contiguous()
    if values and bias.numel() and int(bias.abs().max()) >= BIAS_LIMIT:
        raise ValueError("bias_mant * 2**bias_exp must satisfy |bias| < 2**24")
    u0 = _check_state("u_init", u_init, shape, a.device, values)
    v0 = _check_state("v_init", v_init, shape, a.device, values)
    which = resolve_backend(backend, a.device)
    if which == "triton":
        from .triton_cuba import cuba_fixed_triton

        return cuba_fixed_triton(a.contiguous(), du, dv, vth_mant, bias, u0, v0)
    return cuba_fixed_reference(a, du, dv, vth_mant, bias, 0, u0, v0)
