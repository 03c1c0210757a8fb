"""Launch configurations: ``triton.autotune`` on a GPU, one fixed large-block config interpreted.

Under TRITON_INTERPRET=1 the cost is per program and loop iteration while a block is
vectorised by NumPy, so one large block is fastest, and autotune with several configs cannot
run there ("0 active drivers", shared/reference/triton.md). On a GPU the kernel is wrapped in
``triton.autotune`` over the given configs (BLOCK sizes, num_warps, num_stages), keyed on the
size arguments; Triton adds the dtypes of tensor arguments to the key itself.

A ``Tuned`` kernel is launched as ``tuned[grid](*args, **kwargs)`` where ``grid`` is a function
of the meta-parameters (``lambda meta: (triton.cdiv(N, meta["BLOCK"]),)``), exactly like an
autotuned Triton kernel. The underlying ``@triton.jit`` function stays importable under its own
name (tests hook it; the AOT compile check compiles it for every config in ``configs``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import triton

from ._backend import triton_interpreted

LAUNCH_KEYS = ("num_warps", "num_stages")


def split_config(cfg: dict) -> tuple[dict, dict]:
    """(meta-parameters, launch options) of a config dict such as
    ``{"BLOCK": 1024, "num_warps": 4, "num_stages": 2}``."""
    meta = {k: v for k, v in cfg.items() if k not in LAUNCH_KEYS}
    launch = {k: cfg[k] for k in LAUNCH_KEYS if k in cfg}
    return meta, launch


class Tuned:
    """A Triton kernel with GPU autotune configs and one interpreter config.

    Args:
        fn: the ``@triton.jit`` kernel (JITFunction, or InterpretedFunction under
            TRITON_INTERPRET=1).
        configs: GPU configs, dicts of meta-parameters plus optional num_warps/num_stages;
            the first is the default (used when only one is given).
        key: argument names the autotune cache is keyed on (sizes).
        interp: the config used under the interpreter.
        reset_to_zero: output arguments accumulated with atomics (zeroed before each
            benchmark run of autotune).
    """

    def __init__(self, fn, configs: Sequence[dict], key: Sequence[str], interp: dict,
                 reset_to_zero: Sequence[str] | None = None) -> None:
        if not configs:
            raise ValueError("Tuned needs at least one GPU config")
        self.fn = fn
        self.configs = [dict(c) for c in configs]
        self.interp = dict(interp)
        self.key = list(key)
        self.interpreted = triton_interpreted()
        if self.interpreted or len(self.configs) == 1:
            self.kernel = fn
        else:
            tconfigs = []
            for c in self.configs:
                meta, launch = split_config(c)
                tconfigs.append(triton.Config(meta, **launch))
            self.kernel = triton.autotune(tconfigs, key=self.key,
                                          reset_to_zero=list(reset_to_zero or []))(fn)

    @property
    def autotuned(self) -> bool:
        """True when launches go through ``triton.autotune`` (GPU, several configs)."""
        return self.kernel is not self.fn

    def fixed_config(self) -> dict:
        """The config used when not autotuning (interpreter, or a single GPU config)."""
        return self.interp if self.interpreted else self.configs[0]

    def __getitem__(self, grid: Callable[[dict], tuple]):
        if self.autotuned:
            return self.kernel[grid]
        meta, launch = split_config(self.fixed_config())
        return functools.partial(self.kernel[grid(meta)], **meta, **launch)
