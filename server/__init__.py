"""stc.server: the OIP v2 gRPC inference server (``stc serve``).

Modules: app (InferenceServer, ServerConfig), inference_service (OIP v2 servicer),
repository_service (bundle upload/list/load/unload/delete), repository (ModelRepository: the
``<repo>/<name>/<version>/model.stcb`` layout, hot replace), batcher (bounded queue + dynamic
batching), codec (OIP tensors <-> numpy, validation), executable (the Executable protocol),
metrics (Prometheus), auth (Bearer token), logs (JSON lines), errors (ServingError).
"""

from stc.server.app import InferenceServer, ServerConfig
from stc.server.executable import Executable
from stc.server.repository import ModelRepository

__all__ = ["Executable", "InferenceServer", "ModelRepository", "ServerConfig"]
