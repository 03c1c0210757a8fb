"""Data-based threshold balancing: robust activation scales of every ReLU on calibration data.

lambda = the ``percentile``-th percentile of a ReLU's activations over the whole calibration
set (all samples and positions; ``channel_wise``: per channel), as in Rueckauer et al.,
Front. Neurosci. 11:682, 2017, sec. 2.3 (p = 99.9 is robust to outliers; p = 100 is the
max-norm of Diehl et al., IJCNN 2015). The activations are computed by onnxruntime.
"""

from __future__ import annotations

import numpy as np

from .build import neuron_points
from .reader import OnnxModel, run_onnx


def calibrate(m: OnnxModel, data: np.ndarray, percentile: float = 99.9,
              channel_wise: bool = False) -> dict[str, np.ndarray]:
    """Activation scale per neuron point (see :func:`stc.convert.build.neuron_points`).

    Args:
        m: the read model. data: calibration inputs [n, *input_shape], float32.
        percentile: in (0, 100]. channel_wise: one scale per channel (axis 1 of the
            activation) instead of one per layer.

    Returns:
        tensor name -> scale: a 0-d array, or [C] when ``channel_wise``. A scale of 0 (a
        ReLU that never fired on the data) becomes 1, so its neuron stays silent.

    Raises:
        ValueError: percentile outside (0, 100]; data of the wrong shape (names the expected
            shape) or with NaN/inf values.
    """
    p = float(percentile)
    if not 0.0 < p <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    x = np.asarray(data)
    if not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"calibration data must be numeric, got dtype {x.dtype}")
    if x.ndim == len(m.input_shape):  # a single sample
        x = x[None]
    if x.ndim != 1 + len(m.input_shape) or tuple(x.shape[1:]) != m.input_shape or not len(x):
        raise ValueError(f"calibration data must have shape [n, "
                         f"{', '.join(map(str, m.input_shape))}] (input {m.input_name!r}); "
                         f"got {tuple(np.shape(data))}")
    if not np.isfinite(x).all():
        raise ValueError("calibration data contains NaN or inf values")
    points = sorted(set(neuron_points(m).values()))
    acts = run_onnx(m, x.astype(np.float32), extra_outputs=points)
    out = {}
    for name in points:
        a = acts[name].astype(np.float64)
        if channel_wise and a.ndim >= 2:
            lam = np.percentile(np.moveaxis(a, 1, 0).reshape(a.shape[1], -1), p, axis=1)
        else:
            lam = np.asarray(np.percentile(a, p))
        out[name] = np.where(lam > 0, lam, 1.0)
    return out
