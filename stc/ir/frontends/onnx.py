"""ONNX frontend: an ONNX ANN becomes a spiking IR graph through ANN-to-SNN conversion.

ONNX describes non-spiking networks, so reading one means converting it (stc.convert: IF
neurons, reset by subtraction, data-based threshold balancing, Rueckauer et al., Front.
Neurosci. 11:682, 2017). This module is the frontend-shaped entry point; the options and the
conversion report live in :func:`stc.convert.convert_onnx`.
"""

from __future__ import annotations


def from_onnx(model, calibration, *, timesteps: int = 32, input_shape=None, **options):
    """Convert ``model`` (.onnx path, bytes or onnx.ModelProto) with ``calibration`` inputs
    [n, *input_shape] and return the verified IR graph (Input -> Repeat(T) -> ... ->
    TimeMean -> Output; static inputs [B, *input_shape]).

    Raises:
        FileNotFoundError, TypeError, ValueError: unreadable model or bad calibration data.
        MappingError: an op with no conversion (named with its node).
    """
    from stc.convert import convert_onnx

    return convert_onnx(model, calibration, timesteps=timesteps, input_shape=input_shape,
                        **options).graph
