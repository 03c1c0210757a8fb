"""The CLI vocabulary shared by every ``stc`` subcommand, as typer ``Annotated`` options.

One word, one meaning (CONTRIBUTING.md, "CLI vocabulary"):

- ``--device`` where it runs: ``cpu | gpu | lava-sim | loihi`` (``cuda`` is an alias of gpu);
- ``--backend`` the kernel implementation only: ``auto | triton | torch``;
- ``--numerics`` ``float | fixed``; ``--timesteps/-T`` timesteps T;
- ``--public-key`` a public key to verify with; ``--signing-key`` a private key to sign with;
- ``-o/--output`` an output FILE path (``--out`` names an output folder); ``--json``.

Old spellings (``--time-steps``, ``--key``, ``run/serve --backend gpu`` for the device, ...)
stay for one release as hidden options made with :func:`deprecated`: they still work and
print a warning naming the new spelling. ``tests/cli/test_cli_vocabulary.py`` walks every
registered subcommand and checks this vocabulary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEVICES = ("cpu", "gpu", "lava-sim", "loihi")
DEVICE_ALIASES = {"cuda": "gpu"}
KERNEL_BACKENDS = ("auto", "triton", "torch")
NUMERICS = ("float", "fixed")
#: Options no subcommand may declare visibly (old or ambiguous spellings).
BANNED = ("--time-steps", "--time_steps", "--timestep", "--key", "--private-key", "--pub-key")
REMOVAL = "stc 0.3"


def warn(message: str) -> None:
    """Print ``warning: message`` on stderr (never stdout: ``--json`` output stays clean)."""
    typer.echo(f"warning: {message}", err=True)


class Choice:
    """A typer ``parser`` accepting ``choices`` (and ``aliases`` -> canonical value).

    ``legacy`` values are accepted too and returned unchanged, for options whose old meaning
    the command body translates (``--backend gpu`` meaning the device; see
    :func:`split_backend`). Raises ``typer.BadParameter`` (exit 2) for anything else, listing
    the accepted values.
    """

    def __init__(self, option: str, choices: tuple[str, ...],
                 aliases: dict[str, str] | None = None, legacy: tuple[str, ...] = ()) -> None:
        self.option, self.choices = option, tuple(choices)
        self.aliases, self.legacy = dict(aliases or {}), tuple(legacy)
        self.__name__ = option.lstrip("-")

    @property
    def metavar(self) -> str:
        return "|".join(self.choices)

    def __call__(self, value: str) -> str:
        v = str(value).strip().lower()
        if v in self.choices:
            return v
        if v in self.aliases:
            return self.aliases[v]
        if v in self.legacy:
            return v
        shown = " | ".join(self.choices)
        alias = "".join(f" ({a} = {c})" for a, c in self.aliases.items())
        raise typer.BadParameter(f"{self.option} must be one of {shown}{alias}; got {value!r}")


def device(choices: tuple[str, ...] = DEVICES, help: str | None = None,
           default_note: str | None = None, accept_auto: bool = False) -> typer.Option:
    """The ``--device`` option restricted to ``choices`` (a subset of DEVICES).

    ``accept_auto``: also take the old value "auto" (returned as "auto": the body resolves it
    with :func:`machine_device`)."""
    bad = set(choices) - set(DEVICES)
    if bad:
        raise ValueError(f"--device choices must come from {DEVICES}; got {sorted(bad)}")
    aliases = {a: c for a, c in DEVICE_ALIASES.items() if c in choices}
    text = help or "where it runs: " + " | ".join(choices) + (
        " (cuda = gpu)" if aliases else "")
    if default_note:
        text += f" (default: {default_note})"
    legacy = ("auto",) if accept_auto else ()
    return typer.Option("--device", parser=Choice("--device", choices, aliases, legacy),
                        metavar="|".join(choices), help=text, show_default=default_note is None)


def backend(legacy_device: bool = False, help: str | None = None) -> typer.Option:
    """The ``--backend`` option: the kernel implementation (auto | triton | torch).

    ``legacy_device=True``: device names are accepted too (the option's old meaning in
    ``run``/``serve``); pass the value through :func:`split_backend`.
    """
    legacy = tuple(DEVICES) + tuple(DEVICE_ALIASES) if legacy_device else ()
    return typer.Option("--backend", parser=Choice("--backend", KERNEL_BACKENDS, legacy=legacy),
                        metavar="auto|triton|torch",
                        help=help or "kernel implementation: auto | triton | torch")


def numerics(help: str | None = None) -> typer.Option:
    """The ``--numerics`` option (float | fixed)."""
    return typer.Option("--numerics", parser=Choice("--numerics", NUMERICS),
                        metavar="float|fixed", help=help or "float | fixed")


def deprecated(old: str, new: str, *, is_flag: bool = False) -> typer.Option:
    """A hidden option spelled ``old`` that still works and warns: use ``new`` instead.

    The command body merges it with :func:`pick` (``value = pick(new_value, old_value)``).
    """

    def _warn(value):
        if value not in (None, False, (), []):
            warn(f"{old} is deprecated (removed in {REMOVAL}); use {new}")
        return value

    kw = {"is_flag": True} if is_flag else {}
    return typer.Option(old, hidden=True, callback=_warn, help=f"deprecated alias of {new}",
                        **kw)


def pick(new, old, default=None):
    """The value of an option given either its new or its deprecated spelling (old wins only
    when the new one was not given), else ``default``."""
    if old is not None:
        return old
    return default if new is None else new


def split_backend(device_value: str | None, backend_value: str | None,
                  default_device: str | None = None) -> tuple[str | None, str | None]:
    """(device, kernel backend) from ``--device`` and a ``--backend`` that may still carry a
    device name (its meaning in run/serve before the vocabulary was unified): a device name
    there is taken as ``--device`` with a deprecation warning."""
    if backend_value is not None and backend_value not in KERNEL_BACKENDS:
        dev = DEVICE_ALIASES.get(backend_value, backend_value)
        warn(f"--backend {backend_value} for the device is deprecated (removed in {REMOVAL}); "
             f"use --device {dev} (--backend now means the kernel implementation: "
             "auto | triton | torch)")
        if device_value is not None and device_value != dev:
            raise typer.BadParameter(f"--device {device_value} and --backend {backend_value} "
                                     "name different devices; give --device only")
        return dev, None
    return (device_value if device_value is not None else default_device), backend_value


def machine_device() -> str:
    """"gpu" when torch sees CUDA, else "cpu" (the default ``--device`` of train/bench)."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def torch_device(dev: str) -> str:
    """The torch device string of a CLI device ("gpu" -> "cuda"); exit 2 if absent."""
    import torch

    if dev == "gpu":
        if not torch.cuda.is_available():
            raise typer.BadParameter("--device gpu was given but torch sees no CUDA device; "
                                     "use --device cpu")
        return "cuda"
    return dev


Timesteps = Annotated[int, typer.Option("--timesteps", "-T", min=1, help="timesteps T")]
PublicKey = Annotated[Path | None, typer.Option(
    "--public-key", help="Ed25519 public key (PEM) to verify the signature with")]
SigningKey = Annotated[Path | None, typer.Option(
    "--signing-key", help="Ed25519 private key (PEM) to sign with")]
Json = Annotated[bool, typer.Option("--json", help="print machine-readable JSON on stdout")]
