"""Shared helpers for stc's Lava process graphs: fixed-point LIF/Dense factories and a runner.

Neuron recipes (Loihi CUBA LIF, netx units; shared/reference/attention.md "SDSA maps natively"):

* relay / OR: ``i_decay = v_decay = 4096`` (no memory), ``v_th_mant = 0``: fires at step t iff
  its synaptic input a[t] > 0; with 0/1 inputs and weights 1 this is a one-step delay (relay)
  or an OR of its inputs.
* AND of two spikes: same, ``v_th_mant = 1``: fires iff a[t] >= 2 (weights 1, 1).

Every Dense adds one step of delay (Lava's Dense sends the previous step's accumulation).
"""

from __future__ import annotations

import contextlib
import warnings

import numpy as np

from ..compat import import_lava

OR_NEURON = (4096, 4096, 0)  # (i_decay, v_decay, v_th_mant)
AND_NEURON = (4096, 4096, 1)


def lif(shape, params, bias=0):
    """Lava LIF process (fixed_pt) from (i_decay, v_decay, v_th_mant) in netx units."""
    import_lava()
    from lava.proc.lif.process import LIF

    i_decay, v_decay, vth = params
    return LIF(shape=tuple(shape), du=i_decay - 1, dv=v_decay, vth=vth, bias_mant=bias,
               bias_exp=6)


def dense(weight: np.ndarray, graded: bool = False):
    """Lava Dense process with integer weights [out, in] (binary spikes unless ``graded``)."""
    import_lava()
    from lava.proc.dense.process import Dense

    return Dense(weights=np.asarray(weight, np.int32), num_message_bits=24 if graded else 0)


def run_process_graph(sources, out_port, steps: int, *, hardware: bool = False) -> np.ndarray:
    """Feed ``sources`` [(InPort, data [*port_shape, steps])], run ``steps`` steps with
    Loihi2SimCfg(select_tag='fixed_pt') (Loihi2HwCfg with ``hardware``) and return
    ``out_port``'s values [steps, *shape].

    Only the output is read back (one Var.get). Lava is stopped in a ``finally``, also on
    KeyboardInterrupt.
    """
    import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2HwCfg, Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    for port, data in sources:
        src = Source(data=np.asarray(data, np.int32))
        src.s_out.connect(port)
    sink = Sink(shape=tuple(out_port.shape), buffer=steps)
    out_port.connect(sink.a_in)
    cfg = Loihi2HwCfg() if hardware else Loihi2SimCfg(select_tag="fixed_pt")
    try:
        with warnings.catch_warnings():
            # Lava imports every file next to a process by path when searching models; our
            # package-relative imports make that fail harmlessly (the loaded models are used)
            warnings.filterwarnings("ignore", message="Cannot import module")
            sink.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
        got = np.asarray(sink.data.get())
    finally:
        with contextlib.suppress(Exception):
            sink.stop()
    return np.moveaxis(got, -1, 0).astype(np.int64)
