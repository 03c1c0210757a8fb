"""SDSA (Spike-driven Transformer) built only from Loihi neurons and Dense synapses.

SDSA(Q, K, V) = Q (.) SN_{0.5}(SUM_N(K (.) V))  (Yao et al., NeurIPS 2023, eq. 8-9;
shared/reference/attention.md). On binary spikes each piece is a native Loihi neuron:

1. K (.) V: one AND neuron per (token, channel) with weights 1 from k and v, vThMant 1
   (fires iff both spike), full decay (no state).
2. SN_{0.5}(SUM_N(.)) with the official LIF (tau 2, v_th 0.5, hard reset): for non-negative
   integer input X, H = V/2 + X/2 >= 0.5 iff X >= 1 (after a non-spike V < 0.5), so the LIF
   is exactly an OR over tokens: one neuron per channel, weights 1 from its N AND neurons,
   vThMant 0, full decay.
3. Q (.) kv: one AND neuron per (token, channel) with weights 1 from q and from the channel's
   OR neuron (a broadcast over tokens).
4. Q is delayed by two relay layers (vThMant 0, weights 1) so that it meets kv: every Dense adds
   one step, so both paths take 3 steps. Latency of the block: :data:`SDSA_LATENCY` = 3.

All neurons are memoryless, so consecutive samples need no reset. Inputs and output are
flattened token-major vectors [N * D] (index n * D + c) of one sample per step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .common import AND_NEURON, OR_NEURON, dense, lif

SDSA_LATENCY = 3


@dataclass
class SDSABlock:
    """Handles of a built SDSA process graph: input ports (Dense ``s_in``) and output port."""

    q_in: object
    k_in: object
    v_in: object
    out: object
    n_tokens: int
    dim: int
    latency: int = SDSA_LATENCY


def build_sdsa(n_tokens: int, dim: int) -> SDSABlock:
    """Build the neuron-level SDSA for N = ``n_tokens`` tokens of D = ``dim`` channels.

    Neurons: 2 N D (AND) + D (OR) + 2 N D (relays). Synapses are dense identity / sum /
    broadcast matrices (fine for small N D; on chip they are sparse).

    Raises:
        ValueError: n_tokens or dim < 1.
    """
    if n_tokens < 1 or dim < 1:
        raise ValueError(f"n_tokens and dim must be >= 1, got {n_tokens}, {dim}")
    nd = n_tokens * dim
    eye = np.eye(nd, dtype=np.int32)
    token_sum = np.tile(np.eye(dim, dtype=np.int32), (1, n_tokens))  # [D, N D]
    broadcast = token_sum.T.copy()  # [N D, D]
    # K (.) V
    dk, dv = dense(eye), dense(eye)
    and_kv = lif((nd,), AND_NEURON)
    dk.a_out.connect(and_kv.a_in)
    dv.a_out.connect(and_kv.a_in)
    # OR over tokens (= the v_th 0.5 LIF on the token sum)
    d_sum = dense(token_sum)
    or_kv = lif((dim,), OR_NEURON)
    and_kv.s_out.connect(d_sum.s_in)
    d_sum.a_out.connect(or_kv.a_in)
    # Q delayed by two relays, then Q (.) kv
    dq0 = dense(eye)
    relay1 = lif((nd,), OR_NEURON)
    dq0.a_out.connect(relay1.a_in)
    dq1 = dense(eye)
    relay1.s_out.connect(dq1.s_in)
    relay2 = lif((nd,), OR_NEURON)
    dq1.a_out.connect(relay2.a_in)
    dq2 = dense(eye)
    relay2.s_out.connect(dq2.s_in)
    d_b = dense(broadcast)
    or_kv.s_out.connect(d_b.s_in)
    and_out = lif((nd,), AND_NEURON)
    dq2.a_out.connect(and_out.a_in)
    d_b.a_out.connect(and_out.a_in)
    return SDSABlock(q_in=dq0.s_in, k_in=dk.s_in, v_in=dv.s_in, out=and_out.s_out,
                     n_tokens=n_tokens, dim=dim)


def sdsa_fixed_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The neuron-level SDSA's function without delays: q * (sum_N(k * v) >= 1).

    Shapes [T, N, D] (binary) -> [T, N, D] uint8.
    """
    kv = (np.asarray(k) * np.asarray(v)).sum(axis=-2, keepdims=True) >= 1
    return (np.asarray(q) * kv).astype(np.uint8)
