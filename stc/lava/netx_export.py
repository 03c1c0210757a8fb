"""Write a fixed-point network as a netx HDF5 file (lava-dl 0.6 ``netx.hdf5.Network`` format).

Format (shared/reference/lava.md, "netx HDF5 network format"): root group ``layer`` with
subgroups '0'..'n-1' (input first); ``type`` byte strings; ``shape`` in torch order (netx
reverses it to W,H,C); dense ``weight`` [out, in] and conv ``weight`` [out, in/g, kH, kW] as
integers Lava keeps exactly; ``neuron`` group ``type`` CUBA with ``iDecay``, ``vDecay``,
``vThMant``; optional ``bias`` mantissas (bias_exp 6). A layer without ``neuron`` is netx's
non-firing readout.

Two entry points: :func:`write_netx` (from the layer list of ``stc.lava.layers``) and
:func:`export_netx` (from an stc IR graph, through ``stc.lava.mapping.graph_to_layers``).
"""

from __future__ import annotations

import io
import os

import h5py
import numpy as np

from .layers import ConvLayer, DenseLayer, FlattenLayer, InputLayer, validate_layers


def _type(group: h5py.Group, name: str) -> None:
    group.create_dataset("type", (1,), "S10", [name.encode()])


def _write(f: h5py.File, layers: list) -> None:
    root = f.create_group("layer")
    for i, layer in enumerate(layers):
        g = root.create_group(str(i))
        g.create_dataset("shape", data=np.asarray(layer.shape, dtype=np.int64))
        if isinstance(layer, InputLayer):
            _type(g, "input")
            continue
        if isinstance(layer, FlattenLayer):
            _type(g, "flatten")
            continue
        if isinstance(layer, DenseLayer):
            _type(g, "dense")
        else:
            _type(g, "conv")
            g.create_dataset("stride", data=np.asarray(layer.stride, np.int64))
            g.create_dataset("padding", data=np.asarray(layer.padding, np.int64))
            g.create_dataset("dilation", data=np.asarray(layer.dilation, np.int64))
            g.create_dataset("groups", data=np.int64(layer.groups))
        g.create_dataset("weight", data=layer.weight.astype(np.int64))
        if layer.bias is not None:
            g.create_dataset("bias", data=layer.bias.astype(np.int64))
        if layer.neuron is not None:
            n = g.create_group("neuron")
            _type(n, "CUBA")
            n.create_dataset("iDecay", data=np.int64(layer.neuron.i_decay))
            n.create_dataset("vDecay", data=np.int64(layer.neuron.v_decay))
            n.create_dataset("vThMant", data=np.int64(layer.neuron.v_th_mant))


def write_netx(layers: list, path: str | os.PathLike | None = None) -> bytes:
    """Write ``layers`` (``stc.lava.layers``) as netx HDF5; return the file's bytes.

    Args:
        layers: ``[InputLayer, DenseLayer | ConvLayer | FlattenLayer, ...]``.
        path: where to write the file, or None to only return the bytes.

    Raises:
        ValueError / TypeError: from :func:`stc.lava.layers.validate_layers`.
    """
    validate_layers(layers)
    for layer in layers[1:]:
        if isinstance(layer, ConvLayer) and layer.dilation != (1, 1) and \
                layer.dilation[0] != layer.dilation[1]:
            raise ValueError(f"{layer.name}: netx needs equal dilation in H and W")
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        _write(f, layers)
    data = buf.getvalue()
    if path is not None:
        with open(path, "wb") as fh:
            fh.write(data)
    return data


def export_netx(graph, tensors=None, path: str | os.PathLike | None = None) -> bytes:
    """Export an stc IR graph (an MLP/CNN SNN in Loihi fixed point) as a netx HDF5 file.

    Args:
        graph: ``stc.ir.Graph`` whose spiking chain is Linear/Conv2d + LoihiCubaLIF (sum/max
            Pool2d and Flatten allowed); see ``stc.lava.mapping.graph_to_layers``.
        tensors: name -> tensor dict (defaults to ``graph.tensors``).
        path: output file, or None.

    Returns:
        The HDF5 bytes.

    Raises:
        stc.errors.MappingError: nodes netx cannot express (names them and why).
    """
    from .mapping import graph_to_layers

    return write_netx(graph_to_layers(graph, tensors).layers, path)
