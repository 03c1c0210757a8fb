"""stc on Ray: OIP v2 serving through Ray Serve (replicas, autoscaling) and batch inference
through Ray Data, both on the existing stc runtime and server code (no second runtime).

Ray is an optional extra: ``pip install 'stc[ray]'``. Everything here imports Ray lazily, so
stc without Ray behaves as before; calling into this package without Ray raises
:class:`RayNotInstalledError` with the install command.

- :func:`stc.serve_ray.app.serve_repository`: deploy a bundle repository as a Ray Serve
  application whose gRPC proxy speaks OIP v2 (``tritonclient.grpc`` works unchanged).
- :func:`stc.serve_ray.batch.infer_dataset`: run a bundle over a large array with Ray Data's
  ``map_batches``, one bundle load per actor, results in input order.
"""

from __future__ import annotations

from stc.errors import StcError

INSTALL_HINT = "pip install 'stc[ray]'  (or: pip install 'ray[serve]==2.60.0')"


class RayNotInstalledError(StcError, ImportError):
    """Ray (with Ray Serve) is needed for ``--engine ray`` and is not installed."""


def require_ray():
    """Import and return the ``ray`` module.

    Raises:
        RayNotInstalledError: Ray or Ray Serve is not importable; the message gives the
            install command.
    """
    try:
        import ray
        import ray.serve  # noqa: F401
    except ImportError as err:
        raise RayNotInstalledError(
            f"--engine ray needs Ray, which is not installed ({err}). Install it with: "
            f"{INSTALL_HINT}") from None
    return ray


__all__ = ["INSTALL_HINT", "RayNotInstalledError", "require_ray"]
