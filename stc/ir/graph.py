"""The IR graph: typed nodes, named tensors, JSON round trip and verification.

A :class:`Graph` is a list of nodes (topologically ordered after ``verify``) plus a dict of
named tensors (``torch.Tensor``) that nodes reference through their ``params``. The JSON form
holds the nodes only; tensors travel separately (a safetensors file in a bundle).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields

import torch

from .errors import GraphError
from .nodes import NODE_TYPES, Node
from .shapes import infer_shape

IR_VERSION = 1


__all__ = ["IR_VERSION", "Graph", "GraphError"]


@dataclass
class Graph:
    """Typed IR graph.

    Attributes:
        nodes: the nodes; names unique.
        tensors: tensor name -> torch.Tensor referenced from node ``params``.
        metadata: JSON-serialisable extras (e.g. {"dt": 1e-3, "source": "nir"}).
    """

    nodes: list[Node] = field(default_factory=list)
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    # -- access -------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        """Return the node called ``name``; KeyError naming it if absent."""
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(f"no node named {name!r} in the graph")

    def add(self, node: Node, **tensors: torch.Tensor) -> Node:
        """Append ``node``; each keyword tensor is stored as ``<node.name>.<slot>`` and
        referenced from ``node.params[slot]``. Returns the node."""
        for slot, t in tensors.items():
            if t is None:
                continue
            key = f"{node.name}.{slot}"
            self.tensors[key] = t.detach().clone().contiguous()
            node.params[slot] = key
        self.nodes.append(node)
        return node

    def copy(self) -> Graph:
        """Deep copy: new node objects and cloned tensors."""
        g = Graph.from_dict(self.to_dict(), {k: t.clone() for k, t in self.tensors.items()})
        g.metadata = json.loads(json.dumps(self.metadata))
        return g

    def remove(self, name: str) -> None:
        """Remove node ``name`` and rewire its consumers to its single input."""
        n = self.node(name)
        if len(n.inputs) != 1:
            raise GraphError(f"node {name!r}: only single-input nodes can be bypassed")
        for c in self.consumers(name):
            c.inputs = [n.inputs[0] if s == name else s for s in c.inputs]
        self.nodes.remove(n)

    def prune_tensors(self) -> None:
        """Drop tensors no node references."""
        used = {k for n in self.nodes for k in n.params.values()}
        self.tensors = {k: v for k, v in self.tensors.items() if k in used}

    def param(self, node: Node, slot: str) -> torch.Tensor | None:
        """The tensor in ``node``'s ``slot``, or None when the slot is empty."""
        key = node.params.get(slot)
        return None if key is None else self.tensors[key]

    def inputs(self) -> list[Node]:
        """The Input nodes, in order."""
        return [n for n in self.nodes if n.OP == "Input"]

    def outputs(self) -> list[Node]:
        """The Output nodes, in order."""
        return [n for n in self.nodes if n.OP == "Output"]

    def consumers(self, name: str) -> list[Node]:
        """Nodes that read node ``name``."""
        return [n for n in self.nodes if name in n.inputs]

    # -- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """JSON-ready dict: {"ir_version", "nodes": [{"op", "name", ...}], "metadata"}."""
        out = []
        for n in self.nodes:
            d = {"op": n.OP, "name": n.name, "inputs": list(n.inputs),
                 "shape": list(n.shape), "params": dict(n.params)}
            for k, v in n.attrs().items():
                d[k] = list(v) if isinstance(v, tuple) else v
            out.append(d)
        return {"ir_version": IR_VERSION, "nodes": out, "metadata": self.metadata}

    def to_json(self) -> str:
        """Canonical JSON (sorted keys) of the nodes; tensors are not included."""
        return json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: object, tensors: dict[str, torch.Tensor] | None = None) -> Graph:
        """Rebuild a graph from :meth:`to_dict` output; strict about types and keys.

        Raises:
            GraphError: unknown op, unknown or missing field, wrong field type.
        """
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
            raise GraphError("graph must be an object with a 'nodes' list")
        if data.get("ir_version") != IR_VERSION:
            raise GraphError(f"graph ir_version must be {IR_VERSION}, "
                             f"got {data.get('ir_version')!r}")
        meta = data.get("metadata", {})
        if not isinstance(meta, dict):
            raise GraphError("graph metadata must be an object")
        nodes = [_node_from_dict(i, d) for i, d in enumerate(data["nodes"])]
        return cls(nodes=nodes, tensors=dict(tensors or {}), metadata=meta)

    @classmethod
    def from_json(cls, text: str, tensors: dict[str, torch.Tensor] | None = None) -> Graph:
        """Parse :meth:`to_json` output. Raises GraphError on bad JSON or structure."""
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, TypeError) as e:
            raise GraphError(f"graph JSON does not parse: {e}") from None
        return cls.from_dict(data, tensors)

    # -- verification -------------------------------------------------------------------
    def verify(self, check_tensors: bool = True) -> Graph:
        """Check the graph and sort it topologically (in place); returns self.

        Checks: unique names, known inputs, arity, no cycles, parameter slots present in
        ``tensors`` (if ``check_tensors``), every node's shape equal to the shape inferred
        from its inputs and parameters (stc.ir.shapes), and (if ``check_tensors``) that
        integer Linear/Conv2d weights are ones Lava's Dense keeps unchanged
        (:func:`loihi_weight_problem`).

        Raises:
            GraphError: naming the node and the problem (for weights: the offending values).
        """
        names: dict[str, Node] = {}
        for n in self.nodes:
            if n.name in names:
                raise GraphError(f"node {n.name!r}: duplicate node name")
            names[n.name] = n
        for n in self.nodes:
            for src in n.inputs:
                if src not in names:
                    raise GraphError(f"node {n.name!r}: unknown input {src!r}")
            if n.ARITY >= 0 and len(n.inputs) != n.ARITY:
                raise GraphError(f"node {n.name!r} ({n.OP}): expects {n.ARITY} input(s), "
                                 f"got {len(n.inputs)}")
            if n.ARITY < 0 and not n.inputs:
                raise GraphError(f"node {n.name!r} ({n.OP}): expects at least one input")
            for slot in n.PARAMS:
                if slot not in n.params:
                    raise GraphError(f"node {n.name!r} ({n.OP}): missing parameter {slot!r}")
            for slot, key in n.params.items():
                if slot not in n.PARAMS + n.OPTIONAL and not n.ANY_PARAMS:
                    raise GraphError(f"node {n.name!r} ({n.OP}): unknown parameter {slot!r}")
                if check_tensors and key not in self.tensors:
                    raise GraphError(f"node {n.name!r}: missing tensor {key!r} ({slot})")
            if check_tensors and n.OP in ("Linear", "Conv2d") and "weight" in n.params:
                problem = loihi_weight_problem(self.tensors[n.params["weight"]])
                if problem:
                    raise GraphError(f"node {n.name!r} ({n.OP}): {problem}")
        self.nodes = _toposort(self.nodes)
        temporal: dict[str, bool] = {}
        for n in self.nodes:
            in_shapes = [tuple(names[s].shape) for s in n.inputs]
            want = infer_shape(self, n, in_shapes, check_tensors)
            if tuple(n.shape) != tuple(want):
                raise GraphError(f"node {n.name!r} ({n.OP}): shape mismatch, declared "
                                 f"{tuple(n.shape)} but inputs give {tuple(want)}")
            temporal[n.name] = _temporal(n, [temporal[s] for s in n.inputs])
        self.metadata = dict(self.metadata)
        return self

    def infer_shapes(self) -> Graph:
        """Set every non-Input node's shape from its inputs (topological order); returns
        self. Raises GraphError like :meth:`verify`."""
        by_name = {n.name: n for n in self.nodes}
        for n in self.nodes:
            for src in n.inputs:
                if src not in by_name:
                    raise GraphError(f"node {n.name!r}: unknown input {src!r}")
        for n in _toposort(self.nodes):
            if n.OP != "Input":
                n.shape = tuple(infer_shape(self, n, [tuple(by_name[s].shape)
                                                      for s in n.inputs]))
        return self

    def temporal(self) -> dict[str, bool]:
        """Node name -> whether its value carries the T axis ([T, B, ...])."""
        out: dict[str, bool] = {}
        for n in _toposort(self.nodes):
            out[n.name] = _temporal(n, [out[s] for s in n.inputs])
        return out

    def num_parameters(self) -> int:
        """Total number of elements in the referenced tensors."""
        used = {k for n in self.nodes for k in n.params.values()}
        return sum(self.tensors[k].numel() for k in used if k in self.tensors)


def _temporal(n: Node, ins: list[bool]) -> bool:
    if n.OP == "Input":
        return bool(n.temporal)
    if n.OP == "Repeat":
        return True
    if n.OP == "TimeMean":
        return False
    return any(ins)


def loihi_weight_problem(w) -> str | None:
    """Why Lava's fixed-point Dense would change the integer weights ``w`` (None when it
    keeps them, or when ``w`` is floating point: a float layer, e.g. the host readout).

    Lava 0.10 (lava/proc/dense/models.py with lava/utils/weightutils.py, num_weight_bits 8)
    determines a sign mode from the whole matrix (all >= 0: excitatory, all <= 0:
    inhibitory, else mixed), clips to [0, 255], [-255, 0] or [-256, 255], and for mixed signs
    drops the lowest bit ((w >> 1) << 1). So the weights Lava keeps are: integers in [0, 255]
    (all >= 0), in [-255, 0] (all <= 0), or even integers in [-256, 254] (mixed signs).
    """
    if not isinstance(w, torch.Tensor) or w.is_floating_point() or w.numel() == 0:
        return None
    w = w.to(torch.int64)
    lo, hi = int(w.min()), int(w.max())
    if lo >= 0:
        bad, rule = w > 255, "all >= 0: integers in [0, 255]"
    elif hi <= 0:
        bad, rule = w < -255, "all <= 0: integers in [-255, 0]"
    else:
        bad = (w < -256) | (w > 254) | (w % 2 != 0)
        rule = "mixed signs: even integers in [-256, 254] (Lava drops the lowest bit)"
    if not bool(bad.any()):
        return None
    vals = sorted({int(v) for v in w[bad].unique()[:8]})
    return (f"{int(bad.sum())} integer weight(s) Lava's Dense would change, e.g. {vals}; "
            f"Loihi holds {rule}")


def _toposort(nodes: list[Node]) -> list[Node]:
    by_name = {n.name: n for n in nodes}
    state: dict[str, int] = {}
    order: list[Node] = []
    for root in nodes:
        if root.name in state:
            continue
        stack = [(root, 0)]
        while stack:
            n, i = stack.pop()
            if i == 0:
                if state.get(n.name) == 2:
                    continue
                state[n.name] = 1
            if i < len(n.inputs):
                stack.append((n, i + 1))
                child = by_name[n.inputs[i]]
                if state.get(child.name) == 1:
                    raise GraphError(f"node {n.name!r}: cycle through input {child.name!r}")
                if child.name not in state:
                    stack.append((child, 0))
            else:
                state[n.name] = 2
                order.append(n)
    return order


_COMMON = {"op", "name", "inputs", "shape", "params"}
_NULLABLE = {"v_reset"}


def _node_from_dict(index: int, d: object) -> Node:
    if not isinstance(d, dict):
        raise GraphError(f"node #{index}: must be an object")
    op, name = d.get("op"), d.get("name")
    if not isinstance(name, str) or not name:
        raise GraphError(f"node #{index}: 'name' must be a non-empty string")
    if not isinstance(op, str) or op not in NODE_TYPES:
        raise GraphError(f"node {name!r}: unknown op {op!r}")
    cls = NODE_TYPES[op]
    inputs, shape, params = d.get("inputs", []), d.get("shape", []), d.get("params", {})
    if not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs):
        raise GraphError(f"node {name!r}: 'inputs' must be a list of strings")
    if not isinstance(shape, list) or not all(_is_int(s) and s > 0 for s in shape):
        raise GraphError(f"node {name!r}: 'shape' must be a list of positive ints")
    if not isinstance(params, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
        raise GraphError(f"node {name!r}: 'params' must map strings to strings")
    kwargs: dict = {}
    declared = {f.name: f for f in fields(cls)}
    for key, value in d.items():
        if key in _COMMON:
            continue
        if key not in declared:
            raise GraphError(f"node {name!r} ({op}): unknown field {key!r}")
        default = declared[key].default
        kwargs[key] = _coerce(name, key, value, default)
    return cls(name=name, inputs=list(inputs), shape=tuple(shape), params=dict(params), **kwargs)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _coerce(node: str, key: str, value: object, default: object) -> object:
    bad = GraphError(f"node {node!r}: field {key!r} has the wrong type "
                     f"({type(value).__name__}; default is {default!r})")
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad
        return value
    if isinstance(default, tuple):
        if (not isinstance(value, list) or len(value) != len(default)
                or not all(_is_int(v) and 0 <= v <= 1 << 16 for v in value)):
            raise bad
        return tuple(value)
    if _is_int(default):
        if not _is_int(value) or abs(value) > 1 << 31:
            raise bad
        return value
    if isinstance(default, float) or default is None:
        if value is None and (default is None or key in _NULLABLE):
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise bad
        if not math.isfinite(value):
            raise bad
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad
        return value
    raise bad
