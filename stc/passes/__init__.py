"""stc.passes: graph passes, each a small unit returning a new graph and a report:
attention lowering, BN folding, quantisation to Loihi fixed point, magnitude pruning,
dead-node elimination."""

from .bn_fold import fold_batchnorm
from .dce import eliminate_dead_nodes
from .lower_attention import lower_attention
from .prune import prune_magnitude
from .quantize import QuantReport, quantize

__all__ = ["QuantReport", "eliminate_dead_nodes", "fold_batchnorm", "lower_attention",
           "prune_magnitude", "quantize"]
