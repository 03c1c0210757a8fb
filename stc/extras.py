"""Optional dependencies ("extras") and the message a user gets when one is missing.

``pip install stc`` installs the core (compile, bundle, run on cpu/gpu, serve). Extras:

- ``[bench]``: the peer libraries ``stc bench`` compares against (SpikingJelly, snnTorch);
- ``[energy]``: measured GPU energy (nvidia-ml-py's NVML counter, Zeus);
- ``[lava]``: Lava (lava-nc 0.10, lava-dl 0.6) for ``lava-sim``. Their metadata says Python
  < 3.11, so pip refuses them on 3.11: install them with ``--no-deps --ignore-requires-python``
  (requirements/nodeps.txt; stc fixes their one 3.11 incompatibility at import time);
- ``[dev]``: tests, linters and every peer library the tests compare against.
"""

from __future__ import annotations

import importlib
import importlib.util

EXTRAS: dict[str, str] = {
    "bench": "pip install 'stc[bench]'",
    "energy": "pip install 'stc[energy]'",
    "lava": ("pip install --no-deps --ignore-requires-python lava-nc==0.10.0 lava-dl==0.6.0 "
             "(their metadata says Python < 3.11; see requirements/nodeps.txt)"),
    "triton": "pip install 'stc[triton]'",
}


class MissingExtraError(ImportError):
    """An optional package is missing; the message names the extra and its install command."""


def require(module: str, extra: str, purpose: str):
    """Import and return ``module``, or raise MissingExtraError saying how to install it.

    Args:
        module: import name, e.g. "spikingjelly".
        extra: the stc extra that provides it (a key of EXTRAS).
        purpose: what needs it, e.g. "stc bench (the SpikingJelly baseline)".

    Raises:
        MissingExtraError: the module cannot be imported (an ImportError: the CLI turns it
            into a one-line message and exit code 2).
        KeyError: unknown extra (a programming error).
    """
    install = EXTRAS[extra]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(f"{purpose} needs the {module!r} package (stc's [{extra}] "
                                f"extra), which is not installed ({e}); install it with: "
                                f"{install}") from None


def available(module: str) -> bool:
    """True when ``module`` can be found (not imported)."""
    return importlib.util.find_spec(module) is not None
