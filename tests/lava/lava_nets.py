"""Small fixed-point networks and IR graphs shared by the Lava tests."""

from __future__ import annotations

import functools

import numpy as np
import torch

from stc.ir import nodes as N
from stc.ir.graph import Graph
from stc.lava.layers import ConvLayer, Cuba, DenseLayer, FlattenLayer, InputLayer


def even_weights(rng, *shape, scale=64):
    """Mixed-sign even integers in [-2*scale, 2*scale - 2] (Loihi-representable)."""
    return rng.integers(-scale, scale, shape) * 2


def digits_split(n_test=4, seed=0):
    """sklearn digits (8x8, values 0..16): a quick train split and held-out test samples."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(d.target))
    x = d.images.reshape(-1, 64).astype(np.int64)
    return x[idx[:400]], d.target[idx[:400]], x[idx[-n_test:]], d.target[idx[-n_test:]]


@functools.lru_cache(maxsize=4)
def digits_mlp(seed=0, hidden=32):
    """64 -> hidden -> 10 MLP SNN on graded digits input: random hidden layer, readout fitted
    by least squares on the hidden firing rates (a brief, cheap training) then quantised."""
    from stc.lava.layers import reference_forward

    rng = np.random.default_rng(seed)
    xtr, ytr, _, _ = digits_split(seed=seed)
    w1 = even_weights(rng, hidden, 64, scale=16)
    l1 = DenseLayer(w1, Cuba(i_decay=2048, v_decay=512, v_th_mant=400), name="fc1")
    T = 4
    xs = np.repeat(xtr[:, None], T, axis=1)
    h = reference_forward([InputLayer((64,)), l1], xs).mean(axis=1)  # [n, hidden]
    target = np.eye(10)[ytr]
    w2, *_ = np.linalg.lstsq(np.c_[h, np.ones(len(h))], target, rcond=None)
    w2 = w2[:-1].T  # [10, hidden]
    w2 = np.clip(np.round(w2 / np.abs(w2).max() * 127), -128, 127).astype(np.int64) * 2
    l2 = DenseLayer(w2, Cuba(i_decay=4096, v_decay=1024, v_th_mant=60), name="fc2")
    return [InputLayer((64,)), l1, l2], T


def small_cnn(seed=1):
    """(2, 8, 8) -> conv3x3 p1 (4) -> conv3x3 s2 (4) -> flatten -> dense 6, with a bias."""
    rng = np.random.default_rng(seed)
    return [InputLayer((2, 8, 8)),
            ConvLayer(even_weights(rng, 4, 2, 3, 3), Cuba(1024, 256, 100), in_shape=(2, 8, 8),
                      padding=(1, 1), name="c1"),
            ConvLayer(even_weights(rng, 4, 4, 3, 3), Cuba(2048, 128, 120), in_shape=(4, 8, 8),
                      stride=(2, 2), name="c2"),
            FlattenLayer((4, 3, 3)),
            DenseLayer(even_weights(rng, 6, 36), Cuba(512, 512, 60),
                       bias=rng.integers(-20, 20, 6), name="fc")]


def mlp_graph(layers, T, time_mean=True) -> Graph:
    """IR graph Input -> Repeat(T) -> (Linear -> LoihiCubaLIF)* [-> TimeMean] -> Output."""
    g = Graph()
    n_in = layers[0].shape[0]
    g.add(N.Input(name="x", shape=(n_in,)))
    g.add(N.Repeat(name="rep", inputs=["x"], shape=(n_in,), time_steps=T))
    prev = "rep"
    for i, lay in enumerate(layers[1:]):
        o, k = lay.weight.shape
        g.add(N.Linear(name=f"fc{i}", inputs=[prev], shape=(o,), in_features=k,
                       out_features=o), weight=torch.tensor(lay.weight))
        nu = lay.neuron
        bias = None if lay.bias is None else torch.tensor(lay.bias)
        g.add(N.LoihiCubaLIF(name=f"lif{i}", inputs=[f"fc{i}"], shape=(o,), i_decay=nu.i_decay,
                             v_decay=nu.v_decay, v_th_mant=nu.v_th_mant), bias=bias)
        prev = f"lif{i}"
    if time_mean:
        g.add(N.TimeMean(name="tm", inputs=[prev], shape=(layers[-1].shape[0],)))
        prev = "tm"
    g.add(N.Output(name="y", inputs=[prev], shape=(layers[-1].shape[0],)))
    return g


def cnn_graph(T=4, seed=3) -> Graph:
    """IR graph: Input (1, 6, 6) -> Repeat -> Conv3x3 p1 (3) -> LIF -> MaxPool 2 -> Flatten
    -> Linear 27 -> 5 -> LIF -> Output (spikes)."""
    rng = np.random.default_rng(seed)
    g = Graph()
    g.add(N.Input(name="x", shape=(1, 6, 6)))
    g.add(N.Repeat(name="rep", inputs=["x"], shape=(1, 6, 6), time_steps=T))
    g.add(N.Conv2d(name="c", inputs=["rep"], shape=(3, 6, 6), in_channels=1, out_channels=3,
                   kernel_size=(3, 3), padding=(1, 1)),
          weight=torch.tensor(even_weights(rng, 3, 1, 3, 3, scale=32)))
    g.add(N.LoihiCubaLIF(name="lif", inputs=["c"], shape=(3, 6, 6), i_decay=1024,
                         v_decay=512, v_th_mant=40))
    g.add(N.Pool2d(name="pool", inputs=["lif"], shape=(3, 3, 3), kind="max"))
    g.add(N.Flatten(name="fl", inputs=["pool"], shape=(27,)))
    g.add(N.Linear(name="fc", inputs=["fl"], shape=(5,), in_features=27, out_features=5),
          weight=torch.tensor(even_weights(rng, 5, 27)))
    g.add(N.LoihiCubaLIF(name="lif2", inputs=["fc"], shape=(5,), i_decay=2048, v_decay=256,
                         v_th_mant=60))
    g.add(N.Output(name="y", inputs=["lif2"], shape=(5,)))
    return g
