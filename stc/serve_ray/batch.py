"""Batch inference of a bundle over a large array with Ray Data.

``infer_dataset(bundle, x)`` splits ``x`` (batch-first, as ``stc run`` takes it) into blocks,
runs them through ``map_batches`` with a stateful callable (:class:`BundlePredictor`: one
``stc.runtime.load_bundle`` per actor, reused for every batch) on ``actors`` actors, and returns
the outputs in input order (Ray Data's ``preserve_order``, checked by row count). Ray Data
shows its own progress bar. The outputs equal a plain ``load_bundle(bundle).infer``
(``stc run``) on the same array, row for row: each row is computed by the same runtime code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stc.serve_ray import require_ray


class BundlePredictor:
    """Ray Data callable: loads the bundle once per actor, then maps batches.

    Args:
        bundle: ``.stcb`` path (readable on every Ray node).
        device, numerics, public_key: as in :func:`stc.runtime.load_bundle`.
        input_name: the bundle input the ``"x"`` column feeds (default: its first input).
    """

    def __init__(self, bundle: str, device: str = "cpu", numerics: str | None = None,
                 public_key: str | None = None, input_name: str | None = None) -> None:
        from stc.runtime import load_bundle

        self.exe = load_bundle(bundle, device=device, numerics=numerics,
                               public_key=public_key)
        self.input_name = input_name or self.exe.inputs[0].name

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{"data": [b, ...]}`` (Ray Data's column for ``from_numpy``) -> the outputs."""
        return self.exe.infer({self.input_name: np.ascontiguousarray(batch["data"])})


def load_input(path: str | Path) -> np.ndarray:
    """A ``.npy`` file, or a folder of ``.npy`` files concatenated along dim 0 in name order.

    Raises:
        FileNotFoundError: nothing at ``path`` / no ``.npy`` file in the folder.
        ValueError: the files' shapes after dim 0 or dtypes differ.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.npy"))
        if not files:
            raise FileNotFoundError(f"{path} holds no .npy file")
        parts = [np.load(f, allow_pickle=False) for f in files]
        shapes = {p.shape[1:] for p in parts}
        dtypes = {p.dtype for p in parts}
        if len(shapes) > 1 or len(dtypes) > 1:
            raise ValueError(f"the .npy files in {path} differ in shape after dim 0 "
                             f"({sorted(map(str, shapes))}) or dtype ({sorted(map(str, dtypes))});"
                             " expected one [N, ...] layout")
        return np.concatenate(parts, axis=0)
    if not path.is_file():
        raise FileNotFoundError(f"input {path} does not exist")
    return np.load(path, allow_pickle=False)


def infer_dataset(bundle: str | Path, x: np.ndarray, *, actors: int = 2, batch_size: int = 256,
                  device: str = "cpu", numerics: str | None = None,
                  public_key: str | None = None, address: str | None = None
                  ) -> dict[str, np.ndarray]:
    """Run ``bundle`` over ``x`` [N, ...] with Ray Data; returns ``{output: [N, ...]}``.

    Args:
        bundle: the ``.stcb`` file.
        x: inputs, batch first (the bundle's first input).
        actors: Ray actors, each with its own bundle load (>= 1).
        batch_size: rows per ``map_batches`` call (>= 1).
        device, numerics, public_key: as in :func:`stc.runtime.load_bundle`.
        address: Ray cluster address (None: ``RAY_ADDRESS`` or a new local cluster, shut down
            again afterwards).

    Raises:
        RayNotInstalledError: Ray is not installed.
        FileNotFoundError: the bundle does not exist.
        ValueError: ``actors`` or ``batch_size`` < 1, ``x`` has no batch dimension or no rows.
    """
    if not Path(bundle).is_file():
        raise FileNotFoundError(f"bundle {bundle} does not exist")
    if int(actors) < 1 or int(batch_size) < 1:
        raise ValueError(f"actors and batch_size must be >= 1, got {actors} and {batch_size}")
    x = np.asarray(x)
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must be batch-first with at least one row, got shape {x.shape}")
    require_ray()
    import ray
    import ray.data

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        blocks = max(int(actors) * 2, min(256, -(-x.shape[0] // int(batch_size))))
        parts = [p for p in np.array_split(x, min(blocks, x.shape[0])) if len(p)]
        out = ray.data.from_numpy(parts).map_batches(
            BundlePredictor, batch_size=int(batch_size), batch_format="numpy",
            fn_constructor_kwargs={"bundle": str(Path(bundle).resolve()), "device": device,
                                   "numerics": numerics, "public_key": public_key},
            compute=ray.data.ActorPoolStrategy(size=int(actors)), num_cpus=1)
        batches = list(out.iter_batches(batch_size=None, batch_format="numpy"))
    finally:
        if started:
            ray.shutdown()
    result = {key: np.concatenate([b[key] for b in batches]) for key in batches[0]}
    rows = {v.shape[0] for v in result.values()}
    if rows != {x.shape[0]}:
        raise RuntimeError(f"Ray Data returned {sorted(rows)} rows for {x.shape[0]} inputs")
    return result
