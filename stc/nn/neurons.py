"""Multi-step spiking neurons as torch modules. Inputs are [T, ...] with T timesteps first."""

from __future__ import annotations

import math

import torch
from torch import nn

from stc.errors import check_choice, check_positive
from stc.kernels import BACKENDS
from stc.kernels.alif import alif_multistep
from stc.kernels.cuba_fixed import cuba_lif_fixed
from stc.kernels.cuba_fixed.op import VTH_MANT_MAX, check_int
from stc.kernels.cuba_lif import cuba_lif_multistep
from stc.kernels.lif import DEFAULT_ALPHA, SURROGATES, lif_multistep


class _SpikingNeuron(nn.Module):
    """Shared parameter handling of the float multi-step neurons (LIF, IF, ALIF, CubaLIF):
    threshold, reset, surrogate gradient, kernel backend and the optional stored state."""

    def _init_spiking(self, v_th: float, v_reset: float | None, detach_reset: bool,
                      surrogate: str, alpha: float | None, backend: str,
                      store_v: bool) -> None:
        self.v_th = float(v_th)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.detach_reset = bool(detach_reset)
        self.surrogate = str(check_choice("surrogate", surrogate, SURROGATES))
        self.alpha = DEFAULT_ALPHA[surrogate] if alpha is None else check_positive("alpha", alpha)
        self.backend = str(check_choice("backend", backend, BACKENDS))
        self.store_v = store_v
        self.v_last: torch.Tensor | None = None


class LIF(_SpikingNeuron):
    """Multi-step leaky integrate-and-fire neuron (SpikingJelly MultiStepLIFNode semantics).

    Forward: x [T, ...] (input current, fp32/fp16/bf16) -> spikes [T, ...] in x.dtype.
    Stateless: every call starts from V = v_reset (0 for soft reset); the membrane potential
    after the last step is kept in ``self.v_last`` when ``store_v=True``.

    Args:
        tau: membrane time constant (timesteps, > 1). Official spiking transformers: 2.0.
            float('inf') with decay_input=False is an IF neuron (H = V + X).
        v_th: threshold (1.0; 0.5 after attention products in Spikformer/SDT).
        v_reset: hard-reset potential, or None for soft reset.
        decay_input, detach_reset: as SpikingJelly's LIFNode.
        surrogate: "sigmoid" | "atan" | "fast_sigmoid"; alpha: its sharpness.
        backend: "auto" | "triton" | "torch".

    Raises:
        ValueError / TypeError on bad parameters (at construction) or bad input (at call),
        see ``stc.kernels.lif.lif_multistep``.
    """

    def __init__(
        self,
        tau: float = 2.0,
        v_th: float = 1.0,
        v_reset: float | None = 0.0,
        decay_input: bool = True,
        detach_reset: bool = True,
        surrogate: str = "sigmoid",
        alpha: float | None = None,
        backend: str = "auto",
        store_v: bool = False,
    ) -> None:
        super().__init__()
        self.tau = check_positive("tau", tau, allow_inf=True)
        if self.tau <= 1.0:  # the leak 1/tau would exceed 1: V overshoots and spikes always
            raise ValueError(f"tau must be > 1 timestep (the leak per step is 1/tau; "
                             f"SpikingJelly's LIFNode requires tau > 1 too); got tau={tau}")
        if math.isinf(self.tau) and decay_input:
            raise ValueError(
                "tau = inf is only allowed with decay_input=False (an IF neuron, H = V + X); "
                "got decay_input=True"
            )
        self.decay_input = bool(decay_input)
        self._init_spiking(v_th, v_reset, detach_reset, surrogate, alpha, backend, store_v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes, v = lif_multistep(
            x.contiguous() if isinstance(x, torch.Tensor) else x,
            tau=self.tau, v_th=self.v_th, v_reset=self.v_reset, decay_input=self.decay_input,
            detach_reset=self.detach_reset, surrogate=self.surrogate, alpha=self.alpha,
            backend=self.backend,
        )
        if self.store_v:
            self.v_last = v.detach()
        return spikes

    def extra_repr(self) -> str:
        return (f"tau={self.tau}, v_th={self.v_th}, v_reset={self.v_reset}, "
                f"decay_input={self.decay_input}, detach_reset={self.detach_reset}, "
                f"surrogate={self.surrogate!r}, backend={self.backend!r}")


class IF(_SpikingNeuron):
    """Multi-step integrate-and-fire neuron (no leak): H[t] = V[t-1] + X[t].

    Runs the fused LIF op with tau = inf and decay_input=False
    (``stc.kernels.lif.lif_multistep``), so it gets the same Triton forward/backward kernels.
    S[t] = H[t] >= v_th; hard reset to v_reset, or soft reset (subtract v_th) for None.

    Forward: x [T, ...] (fp32/fp16/bf16) -> spikes [T, ...] in x.dtype. Stateless (each call
    starts from v_reset, 0 for soft reset); V[T-1] kept in ``self.v_last`` if ``store_v``.

    Args:
        v_th, v_reset, detach_reset, surrogate, alpha, backend: as ``LIF``.

    Raises:
        ValueError / TypeError on bad parameters or bad input (see ``lif_multistep``).

    Source: SpikingJelly IFNode (activation_based/neuron.py); Rueckauer et al., "Conversion
    of continuous-valued deep networks to efficient event-driven networks", Front. Neurosci.
    2017 (IF with reset by subtraction).
    """

    def __init__(
        self,
        v_th: float = 1.0,
        v_reset: float | None = 0.0,
        detach_reset: bool = True,
        surrogate: str = "sigmoid",
        alpha: float | None = None,
        backend: str = "auto",
        store_v: bool = False,
    ) -> None:
        super().__init__()
        self._init_spiking(v_th, v_reset, detach_reset, surrogate, alpha, backend, store_v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes, v = lif_multistep(
            x.contiguous() if isinstance(x, torch.Tensor) else x,
            tau=math.inf, v_th=self.v_th, v_reset=self.v_reset, decay_input=False,
            detach_reset=self.detach_reset, surrogate=self.surrogate, alpha=self.alpha,
            backend=self.backend,
        )
        if self.store_v:
            self.v_last = v.detach()
        return spikes

    def extra_repr(self) -> str:
        return (f"v_th={self.v_th}, v_reset={self.v_reset}, detach_reset={self.detach_reset}, "
                f"surrogate={self.surrogate!r}, backend={self.backend!r}")


class ALIF(_SpikingNeuron):
    """Multi-step adaptive-threshold LIF (LSNN ALIF; Bellec et al., NeurIPS 2018, eq. 2-3).

    H[t] = LIF charge of V[t-1] and X[t] (as ``LIF``); theta[t] = v_th + beta * a[t-1];
    S[t] = H[t] >= theta[t]; reset (hard to v_reset, or soft: subtract theta[t]);
    a[t] = rho a[t-1] + (1 - rho) S[t], rho = exp(-1 / tau_adp).

    Forward: x [T, ...] (fp32/fp16/bf16) -> spikes [T, ...] in x.dtype. Stateless (V starts
    at v_reset, a at 0); ``store_v`` keeps ``v_last`` and ``a_last``. The Triton backend has
    fused forward and backward kernels (surrogate spike gradient, gradient through a); the
    torch backend is the pure-PyTorch reference with autograd.

    Args:
        tau: membrane time constant (timesteps). tau_adp: adaptation time constant
            (timesteps). beta: adaptation strength (>= 0; LSNN: 1.8).
        v_th, v_reset, decay_input, detach_reset, surrogate, alpha, backend: as ``LIF``.

    Raises:
        ValueError / TypeError on bad parameters or input (``stc.kernels.alif.alif_multistep``).
    """

    def __init__(
        self,
        tau: float = 2.0,
        tau_adp: float = 20.0,
        beta: float = 1.8,
        v_th: float = 1.0,
        v_reset: float | None = 0.0,
        decay_input: bool = True,
        detach_reset: bool = True,
        surrogate: str = "sigmoid",
        alpha: float | None = None,
        backend: str = "auto",
        store_v: bool = False,
    ) -> None:
        super().__init__()
        self.tau = check_positive("tau", tau)
        if self.tau <= 1.0:  # as LIF: a leak 1/tau above 1 overshoots
            raise ValueError(f"tau must be > 1 timestep (leak 1/tau per step); got tau={tau}")
        self.tau_adp = check_positive("tau_adp", tau_adp)
        if isinstance(beta, bool) or not isinstance(beta, (int, float)):
            raise TypeError(f"beta must be a number, got {type(beta).__name__}")
        if not beta >= 0 or beta == float("inf"):
            raise ValueError(f"beta must be finite and >= 0, got {beta!r}")
        self.beta = float(beta)
        self.decay_input = bool(decay_input)
        self._init_spiking(v_th, v_reset, detach_reset, surrogate, alpha, backend, store_v)
        self.a_last: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes, v, a = alif_multistep(
            x.contiguous() if isinstance(x, torch.Tensor) else x,
            tau=self.tau, tau_adp=self.tau_adp, beta=self.beta, v_th=self.v_th,
            v_reset=self.v_reset, decay_input=self.decay_input, detach_reset=self.detach_reset,
            surrogate=self.surrogate, alpha=self.alpha, backend=self.backend,
        )
        if self.store_v:
            self.v_last, self.a_last = v.detach(), a.detach()
        return spikes

    def extra_repr(self) -> str:
        return (f"tau={self.tau}, tau_adp={self.tau_adp}, beta={self.beta}, v_th={self.v_th}, "
                f"v_reset={self.v_reset}, backend={self.backend!r}")


class CubaLIF(_SpikingNeuron):
    """Multi-step current-based LIF (float): NIR CubaLIF with dt = 1 timestep.

    I[t] = I[t-1] + (X[t] - I[t-1]) / tau_syn;  H[t] = V[t-1] + ((v_leak - V[t-1]) + I[t]) /
    tau_mem;  S[t] = H[t] >= v_th;  hard reset to v_reset, or soft (subtract v_th) for None.

    Forward: x [T, ...] synaptic input (fp32/fp16/bf16) -> spikes [T, ...] in x.dtype.
    Stateless (I starts at 0, V at v_reset); ``store_v`` keeps ``i_last`` and ``v_last``.
    The Triton backend has fused forward and backward kernels; the torch backend is the
    pure-PyTorch reference with autograd.

    Args:
        tau_syn, tau_mem: synaptic and membrane time constants (timesteps, > 0).
        v_th, v_reset, v_leak: threshold, reset and resting potentials.
        detach_reset, surrogate, alpha, backend: as ``LIF``.

    Raises:
        ValueError / TypeError on bad parameters or input
        (``stc.kernels.cuba_lif.cuba_lif_multistep``).

    Source: NIR CubaLIF (Pedersen et al., Nat. Commun. 2024); Norse LIF (current-based).
    """

    def __init__(
        self,
        tau_syn: float = 5.0,
        tau_mem: float = 10.0,
        v_th: float = 1.0,
        v_reset: float | None = 0.0,
        v_leak: float = 0.0,
        detach_reset: bool = True,
        surrogate: str = "sigmoid",
        alpha: float | None = None,
        backend: str = "auto",
        store_v: bool = False,
    ) -> None:
        super().__init__()
        self.tau_syn = check_positive("tau_syn", tau_syn)
        self.tau_mem = check_positive("tau_mem", tau_mem)
        self.v_leak = float(v_leak)
        self._init_spiking(v_th, v_reset, detach_reset, surrogate, alpha, backend, store_v)
        self.i_last: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spikes, i, v = cuba_lif_multistep(
            x.contiguous() if isinstance(x, torch.Tensor) else x,
            tau_syn=self.tau_syn, tau_mem=self.tau_mem, v_th=self.v_th, v_reset=self.v_reset,
            v_leak=self.v_leak, detach_reset=self.detach_reset, surrogate=self.surrogate,
            alpha=self.alpha, backend=self.backend,
        )
        if self.store_v:
            self.i_last, self.v_last = i.detach(), v.detach()
        return spikes

    def extra_repr(self) -> str:
        return (f"tau_syn={self.tau_syn}, tau_mem={self.tau_mem}, v_th={self.v_th}, "
                f"v_reset={self.v_reset}, v_leak={self.v_leak}, backend={self.backend!r}")


class LoihiCubaLIF(nn.Module):
    """Loihi 2 fixed-point CUBA-LIF, bit-exact with Lava's ``fixed_pt`` LIF process model.

    u = trunc(u (4096 - du - 1) / 4096) + (a << 6) (24-bit wrap);
    v = clip(trunc(v (4096 - dv) / 4096) + u + (bias_mant << bias_exp), +-(2**23 - 1));
    spike where v > vth_mant << 6, then v = 0 (``stc.kernels.cuba_fixed``). Forward only.

    Forward: a [T, ...] int32 synaptic input (W s, weight-mantissa units) -> spikes [T, ...]
    uint8. Stateless (u, v start at 0); after each call ``u_last`` and ``v_last`` (int32 [...])
    hold the final state.

    Args:
        du: Lava ``du`` register in [-1, 4095] (current decay (du + 1) / 4096; netx iDecay - 1).
        dv: Lava ``dv`` in [0, 4096] (voltage decay dv / 4096).
        vth_mant: threshold mantissa in [0, 2**17 - 1] (effective vth_mant << 6).
        bias_mant: int or int32 tensor broadcastable to a.shape[1:]; bias_exp: its exponent.
        backend: "auto" | "triton" | "torch".

    Raises:
        TypeError / ValueError on bad parameters or input (``cuba_lif_fixed``).

    Source: lava-nc 0.10 lava/proc/lif/models.py (AbstractPyLifModelFixed, PyLifModelBitAcc).
    """

    def __init__(
        self,
        du: int,
        dv: int,
        vth_mant: int,
        bias_mant: torch.Tensor | int = 0,
        bias_exp: int = 0,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        self.du = check_int("du", du, -1, 4095)
        self.dv = check_int("dv", dv, 0, 4096)
        self.vth_mant = check_int("vth_mant", vth_mant, 0, VTH_MANT_MAX)
        self.bias_exp = check_int("bias_exp", bias_exp, -24, 24)
        if isinstance(bias_mant, torch.Tensor):
            self.register_buffer("bias_mant", bias_mant.clone())
        else:
            self.bias_mant = check_int("bias_mant", bias_mant, -(1 << 24), 1 << 24)
        self.backend = str(check_choice("backend", backend, BACKENDS))
        self.u_last: torch.Tensor | None = None
        self.v_last: torch.Tensor | None = None

    @classmethod
    def from_netx(cls, i_decay: int, v_decay: int, vth_mant: int,
                  bias: torch.Tensor | int = 0, backend: str = "auto") -> LoihiCubaLIF:
        """Build from a netx HDF5 ``neuron`` group (CUBA): iDecay, vDecay in 0..4096 (decay *
        4096), vThMant, and the dense/conv layer's optional integer ``bias``.

        netx maps these to Lava's LIF as du = iDecay - 1, dv = vDecay, bias_mant = bias,
        bias_exp = 6 (lava/lib/dl/netx/hdf5.py). Raises as the constructor.
        """
        return cls(du=check_int("i_decay", i_decay, 0, 4096) - 1,
                   dv=check_int("v_decay", v_decay, 0, 4096), vth_mant=vth_mant,
                   bias_mant=bias, bias_exp=6, backend=backend)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        spikes, self.u_last, self.v_last = cuba_lif_fixed(
            a, self.du, self.dv, self.vth_mant, bias_mant=self.bias_mant,
            bias_exp=self.bias_exp, backend=self.backend,
        )
        return spikes

    def extra_repr(self) -> str:
        return (f"du={self.du}, dv={self.dv}, vth_mant={self.vth_mant}, "
                f"bias_exp={self.bias_exp}, backend={self.backend!r}")
