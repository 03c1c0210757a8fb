"""stc.convert: ANN-to-SNN conversion of ONNX models (and torch modules through torch.onnx).

Rate-coded IF neurons with reset by subtraction and data-based threshold balancing
(Rueckauer et al., Front. Neurosci. 11:682, 2017); see stc.convert.api and stc.convert.build.
"""

from .api import Conversion, SpikeformerConverter, convert_onnx, torch_to_onnx
from .build import SUPPORTED_OPS
from .reader import MIN_OPSET, OnnxModel, read_onnx, run_onnx

__all__ = ["MIN_OPSET", "SUPPORTED_OPS", "Conversion", "OnnxModel", "SpikeformerConverter",
           "convert_onnx", "read_onnx", "run_onnx", "torch_to_onnx"]
