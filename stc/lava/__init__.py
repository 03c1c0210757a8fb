"""stc.lava: Loihi 2 mapping through Lava (netx export, custom processes, allocation) and the
lava-sim / loihi executors.

Importing this package does not import Lava; functions that need it call
``stc.lava.compat.import_lava()`` (the Python 3.11 fix). ``stc.lava.processes`` modules import
Lava when they are imported.

Main entry points:
    map_graph(graph, tensors=None, chip_config="ncl-1chip") -> LoihiMapping (.members())
    plan_mapping(graph, chip_config="ncl-1chip") -> LoihiMapping (placement estimate only)
    export_netx(graph, tensors=None, path=None) -> bytes;  write_netx(layers, path) -> bytes
    load_lava_executable(bundle_or_path, backend="lava-sim" | "loihi") -> LavaExecutable
    run_lava_sim(layers, x [B, T, ...]) -> spikes [B, T, ...]
"""

from .executor import (
    LavaExecutable,
    LoihiUnavailableError,
    load_lava_executable,
    loihi_available,
    run_lava_sim,
)
from .mapping import LoihiMapping, graph_to_layers, map_graph
from .netx_export import export_netx, write_netx
from .plan import plan_mapping

__all__ = ["map_graph", "plan_mapping", "graph_to_layers", "LoihiMapping", "export_netx",
           "write_netx", "load_lava_executable", "LavaExecutable", "run_lava_sim",
           "loihi_available", "LoihiUnavailableError"]
