"""Lower SSA / DSFormer ``SpikeAttention`` nodes to primitive nodes (for fixed point and Loihi).

A ``SpikeAttention`` node of kind "ssa" or "dsformer" (binary spikes) becomes the nodes its
module computes (stc.nn.attention.SSA / DSFormerAttention, CONTRIBUTING.md contract):

    q = LIF(BatchNorm(Linear(x)))    (k, v the same; LIF tau 2, v_th 1, hard reset 0)
    a = LIF_{v_th 0.5}(AttentionCore(q, k, v))     (O * scale, windowed top-k for DSFormer)
    y = LIF(BatchNorm(Linear_proj(a)))

named ``<node>.q_linear``, ``<node>.q_bn``, ``<node>.q_lif``, ..., ``<node>.core``,
``<node>.attn_lif``, ``<node>.proj_linear``, ``<node>.proj_bn``, ``<node>.proj_lif``; the
consumers of the attention node read ``<node>.proj_lif``. The float function is unchanged
(each node runs the same stc.kernels op or torch layer as the module), so
``stc.passes.bn_fold`` and ``stc.passes.quantize`` can treat the parts as ordinary layers.

An SDSA node (Spike-driven Transformer, membrane shortcut; stc.nn.attention.SDSA) becomes

    s = LIF(x)                                   (``<node>.shortcut_lif``, on the membrane x)
    q = LIF(BatchNorm(Linear_nobias(s)))         (k, v the same)
    a = SDSACore(q, k, v) = q * LIF_{0.5}(sum_N(k * v))      (``<node>.core``)
    y = BatchNorm(Linear_proj(a))                (``<node>.proj_linear``, ``<node>.proj_bn``)

so y is a membrane (pre-spike) term that the block adds to the residual stream;
stc.passes.quantize_residual gives that stream one fixed-point unit.
"""

from __future__ import annotations

from stc.errors import MappingError
from stc.ir import Graph
from stc.ir import nodes as ir

BN_EPS = 1e-5  # torch.nn.BatchNorm1d's default, which stc.nn.attention uses


def lower_attention(graph: Graph) -> tuple[Graph, list[str]]:
    """Return (new graph, names of the lowered attention nodes). The input is not modified.

    Raises:
        MappingError: naming every attention node that cannot be lowered: spike_mode
            "graded" (GradedLIF has no Loihi CUBA form).
    """
    g = graph.copy()
    lowered = []
    bad = [n for n in g.nodes if n.OP == "SpikeAttention" and n.kind != "sdsa"
           and n.spike_mode != "binary"]
    if bad:
        raise MappingError("attention that cannot be lowered to LIF layers: " + ", ".join(
            f"{n.name!r} (kind {n.kind!r}, spike_mode {n.spike_mode!r}: "
            "GradedLIF has no Loihi CUBA form)" for n in bad))
    for att in [n for n in g.nodes if n.OP == "SpikeAttention"]:
        count = len(g.nodes)
        # appended by Graph.add; moved into the attention node's place below
        (_expand_sdsa if att.kind == "sdsa" else _expand)(g, att)
        new = g.nodes[count:]
        del g.nodes[count:]
        at = g.nodes.index(att)
        out = new[-1].name
        for c in g.consumers(att.name):
            c.inputs = [out if s == att.name else s for s in c.inputs]
        g.nodes[at:at + 1] = new
        lowered.append(att.name)
    g.prune_tensors()
    return g.infer_shapes().verify(), lowered


def _expand(g: Graph, att: ir.SpikeAttention) -> None:
    """Append the primitive nodes of one attention node to ``g`` (``Graph.add``)."""
    p = att.name
    dim = int(att.dim)
    x = att.inputs[0]
    shape = tuple(att.shape)

    def tensor(slot: str):
        key = att.params.get(slot)
        return None if key is None else g.tensors[key]

    def put(node: ir.Node, **tensors) -> str:
        node.shape = shape
        return g.add(node, **tensors).name

    def linear_bn_lif(name: str, src: str, v_th: float = 1.0) -> str:
        y = put(ir.Linear(name=f"{p}.{name}_linear", inputs=[src], in_features=dim,
                          out_features=dim),
                weight=tensor(f"{name}_linear.weight"), bias=tensor(f"{name}_linear.bias"))
        y = put(ir.BatchNorm(name=f"{p}.{name}_bn", inputs=[y], num_features=dim, eps=BN_EPS,
                             axis=-1),
                **{s: tensor(f"{name}_bn.{s}")
                   for s in ("running_mean", "running_var", "weight", "bias")})
        return put(ir.LIF(name=f"{p}.{name}_lif", inputs=[y], tau=2.0, v_th=v_th,
                          v_reset=0.0, decay_input=True))

    q, k, v = (linear_bn_lif(s, x) for s in ("q", "k", "v"))
    o = put(ir.AttentionCore(name=f"{p}.core", inputs=[q, k, v], num_heads=int(att.num_heads),
                             scale=float(att.scale), window_size=int(att.window_size),
                             sparse_ratio=float(att.sparse_ratio)))
    a = put(ir.LIF(name=f"{p}.attn_lif", inputs=[o], tau=2.0, v_th=0.5, v_reset=0.0,
                   decay_input=True))
    linear_bn_lif("proj", a)


def _expand_sdsa(g: Graph, att: ir.SpikeAttention) -> None:
    """Append the primitive nodes of one SDSA node (module docstring) to ``g``."""
    p = att.name
    dim = int(att.dim)
    shape = tuple(att.shape)

    def tensor(slot: str):
        key = att.params.get(slot)
        return None if key is None else g.tensors[key]

    def put(node: ir.Node, **tensors) -> str:
        node.shape = shape
        return g.add(node, **tensors).name

    def linear_bn(name: str, src: str, slot: str) -> str:
        y = put(ir.Linear(name=f"{p}.{name}_linear", inputs=[src], in_features=dim,
                          out_features=dim),
                weight=tensor(f"{slot}_conv.weight"), bias=tensor(f"{slot}_conv.bias"))
        return put(ir.BatchNorm(name=f"{p}.{name}_bn", inputs=[y], num_features=dim,
                                eps=BN_EPS, axis=-1),
                   **{s: tensor(f"{slot}_bn.{s}")
                      for s in ("running_mean", "running_var", "weight", "bias")})

    s = put(ir.LIF(name=f"{p}.shortcut_lif", inputs=[att.inputs[0]], tau=2.0, v_th=1.0,
                   v_reset=0.0, decay_input=True))
    qkv = [put(ir.LIF(name=f"{p}.{c}_lif", inputs=[linear_bn(c, s, c)], tau=2.0, v_th=1.0,
                      v_reset=0.0, decay_input=True)) for c in ("q", "k", "v")]
    a = put(ir.SDSACore(name=f"{p}.core", inputs=qkv, num_heads=int(att.num_heads), v_th=0.5))
    linear_bn("proj", a, "proj")
