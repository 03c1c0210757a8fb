"""Make Lava (lava-nc 0.10, lava-dl 0.6) importable on Python 3.11, without editing site-packages.

Two problems, both documented in shared/reference/lava.md:

1. ``lava/magma/compiler/var_model.py`` declares dataclass fields with a mutable default
   (``x: ByteEncoder = ByteEncoder()``), which Python 3.11 rejects with
   ``ValueError: mutable default ... use default_factory``. We install an import hook that
   rewrites exactly those defaults to ``field(default_factory=ByteEncoder)`` as the module's
   source is compiled. Nothing on disk changes.
2. ``import lava.lib.dl.netx`` pulls slayer's ``object_detection``, which needs cv2 and
   torchvision (neither usable here). netx does not use it; we register an empty module
   under that name before importing netx.

Call :func:`import_lava` (idempotent) before any ``import lava...``.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import re
import sys
import types

_VAR_MODEL = "lava.magma.compiler.var_model"
_OBJECT_DETECTION = "lava.lib.dl.slayer.object_detection"
_MUTABLE_DEFAULT = re.compile(r"^(\s+\w+: ByteEncoder) = ByteEncoder\(\)\s*$", re.MULTILINE)


class LavaMissingError(ImportError):
    """Lava (lava-nc / lava-dl) is not installed; the message says how to install it."""


class _PatchedLoader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname):  # always compile from source: a cached .pyc is unpatched
        return self.source_to_code(self.get_data(self.path), self.path)

    def source_to_code(self, data, path, *, _optimize=-1):  # type: ignore[override]
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        fixed, count = _MUTABLE_DEFAULT.subn(r"\1 = field(default_factory=ByteEncoder)", text)
        if count:
            fixed = "from dataclasses import field\n" + fixed if "from __future__" not in fixed \
                else fixed.replace("from __future__ import annotations\n",
                                   "from __future__ import annotations\n"
                                   "from dataclasses import field\n", 1)
        return super().source_to_code(fixed.encode("utf-8"), path)


class _VarModelFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname != _VAR_MODEL:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            return spec
        spec.loader = _PatchedLoader(fullname, spec.origin)
        return spec


def _install_hooks() -> None:
    if not any(isinstance(f, _VarModelFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _VarModelFinder())
    if _OBJECT_DETECTION not in sys.modules:
        stub = types.ModuleType(_OBJECT_DETECTION)
        stub.__doc__ = "Placeholder registered by stc.lava.compat: netx does not use it."
        sys.modules[_OBJECT_DETECTION] = stub


def lava_installed() -> bool:
    """True when the lava-nc package is installed (without importing it)."""
    return importlib.util.find_spec("lava") is not None


def import_lava(netx: bool = False) -> types.ModuleType:
    """Install the Python 3.11 fixes and import ``lava`` (and ``lava.lib.dl.netx`` if asked).

    Returns:
        The ``lava`` package (or ``lava.lib.dl.netx`` when ``netx=True``).

    Raises:
        LavaMissingError: lava-nc (or lava-dl for netx) is not installed; the message gives
            the install command that works on Python 3.11.
    """
    if not lava_installed():
        raise LavaMissingError(
            "Lava is not installed. On Python 3.11 install it with `make venv`, or by hand: "
            "pip install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0 "
            "(after its dependencies; see requirements/README.md)"
        )
    _install_hooks()
    import lava
    import lava.magma.compiler.var_model  # noqa: F401  (patched on import)

    if not netx:
        return lava
    if importlib.util.find_spec("lava.lib.dl") is None:
        raise LavaMissingError("lava-dl is not installed: pip install --no-deps "
                               "--ignore-requires-python lava-dl==0.6.0")
    import lava.lib.dl.netx as netx_module

    return netx_module
