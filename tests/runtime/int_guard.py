"""Test helper: make every torch matmul / convolution / pooling entry point raise on integer
tensors (CUDA has none), so a test proves the fixed path never calls one."""

import torch
import torch.nn.functional as F


def forbid_integer_matmul(monkeypatch) -> None:
    """Patch F.linear / conv / pooling and torch.matmul / mm / bmm / einsum (and Tensor @)
    to raise AssertionError when any tensor argument has an integer dtype."""
    def guard(fn, name):
        def wrapped(*args, **kwargs):
            for a in list(args) + list(kwargs.values()):
                if isinstance(a, torch.Tensor) and not a.is_floating_point():
                    raise AssertionError(f"{name} called on {a.dtype}")
            return fn(*args, **kwargs)
        return wrapped
    for mod, names in ((F, ("linear", "conv1d", "conv2d", "avg_pool2d", "max_pool2d")),
                       (torch, ("matmul", "mm", "bmm", "einsum", "conv2d")),
                       (torch.Tensor, ("matmul", "__matmul__"))):
        for nm in names:
            monkeypatch.setattr(mod, nm, guard(getattr(mod, nm), nm))
