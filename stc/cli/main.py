"""The ``stc`` command line. Each subcommand lives in its own module under stc/cli/ and keeps
its heavy imports inside the function body, so ``stc --help`` stays fast.

Exit codes: 0 success, 1 a failed check (e.g. verification), 2 bad usage or bad input.
"""

from __future__ import annotations

import typer

import stc


def _hide_flag_metavar() -> None:
    """Show flags as ``--json`` rather than ``--json <bool>`` in every --help (typer prints a
    value type even for options that take no value)."""
    from typer.core import TyperOption

    if getattr(TyperOption, "_stc_patched", False):
        return
    orig = TyperOption.display_type_rich

    def display_type_rich(self, ctx):
        return "" if self.is_flag else orig(self, ctx)

    TyperOption.display_type_rich = display_type_rich
    TyperOption._stc_patched = True


_hide_flag_metavar()

app = typer.Typer(
    name="stc",
    help="Spike-Transformer-Compiler: train, bundle, run and serve spiking transformers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Spike-Transformer-Compiler: train, bundle, run and serve spiking transformers."""


@app.command()
def version() -> None:
    """Print stc's version."""
    typer.echo(stc.__version__)


# Subcommands: one line per module (keep sorted).
app.command("bench")(__import__("stc.cli.bench", fromlist=["bench"]).bench)
app.command("bundle")(__import__("stc.cli.bundle", fromlist=["bundle"]).bundle)
app.add_typer(__import__("stc.cli.edge", fromlist=["app"]).app, name="edge")
app.add_typer(__import__("stc.cli.fleet", fromlist=["app"]).app, name="fleet")
app.command("demo", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
    __import__("stc.cli.demo", fromlist=["demo"]).demo)
app.command("energy")(__import__("stc.cli.energy", fromlist=["energy"]).energy)
app.command("convert")(__import__("stc.cli.convert", fromlist=["convert"]).convert)
app.command("export")(__import__("stc.cli.export", fromlist=["export"]).export)
app.command("infer")(__import__("stc.cli.infer", fromlist=["infer"]).infer)
app.command("inspect")(__import__("stc.cli.inspect", fromlist=["inspect"]).inspect)
app.command("keygen")(__import__("stc.cli.keygen", fromlist=["keygen"]).keygen)
app.command("run")(__import__("stc.cli.run", fromlist=["run"]).run)
app.command("serve")(__import__("stc.cli.serve", fromlist=["serve"]).serve)
app.command("train")(__import__("stc.cli.train", fromlist=["train"]).train)
app.command("verify")(__import__("stc.cli.verify", fromlist=["verify"]).verify)


def main() -> None:
    """Entry point of the ``stc`` console script."""
    app()


if __name__ == "__main__":
    main()
