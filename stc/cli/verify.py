"""``stc verify model.stcb [--public-key pub.pem]``: check a bundle without running it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from . import options
from .bundle import cli_errors


def verify(
    bundle: Annotated[Path, typer.Argument(help="the .stcb file")],
    public_key: Annotated[Path | None, typer.Option(
        "--public-key", help="Ed25519 public key (PEM); requires a valid signature")] = None,
    key: Annotated[Path | None, options.deprecated("--key", "--public-key")] = None,
) -> None:
    """Verify schema, member hashes, graph and (with --public-key) the signature. Exit 1 on
    failure."""
    key = options.pick(public_key, key)
    with cli_errors(check_code=1):
        from stc.bundle import read_bundle

        if not bundle.is_file():
            raise FileNotFoundError(f"bundle not found: {bundle}")
        b = read_bundle(bundle, public_key=key)
        sig = "signature verified" if b.verified else (
            "signed (not checked: pass --public-key)" if b.signed else "unsigned")
        typer.echo(f"ok: {b.name} v{b.version}, {len(b.manifest['members'])} member(s) "
                   f"hash-checked, {sig}")
