"""stc.server: the OIP v2 inference server (``stc serve``), gRPC and REST.

Modules: app (InferenceServer, ServerConfig), core (InferenceCore: the validation, batching and
runtime path both transports share), inference_service (OIP v2 gRPC servicer + Triton's config,
statistics and repository RPCs), rest (the OIP REST flavour on Starlette + uvicorn),
repository_service (bundle upload/list/load/unload/delete), repository (ModelRepository: the
``<repo>/<name>/<version>/model.stcb`` layout, hot replace), batcher (bounded queue + dynamic
batching), codec (OIP tensors <-> numpy, validation, per-request checks), executable (the
Executable protocol), stats (Triton-style per-model statistics), metrics (Prometheus), auth
(Bearer token), logs (JSON lines), errors (ServingError).
"""

from stc.server.app import InferenceServer, ServerConfig
from stc.server.executable import Executable
from stc.server.repository import ModelRepository

__all__ = ["Executable", "InferenceServer", "ModelRepository", "ServerConfig"]
