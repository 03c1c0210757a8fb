"""stc.runtime: rebuilds a network from a bundle's graph + safetensors and runs it on cpu or
gpu in float or fixed numerics; ``load_bundle`` is the contract used by the server."""

from .executable import Executable, TensorSpec, load_bundle
from .interpreter import RunResult, execute

__all__ = ["Executable", "RunResult", "TensorSpec", "execute", "load_bundle"]
