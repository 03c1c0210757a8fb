"""Install the carried wheels (.whl/, from ``make gpu-wheels``) that this Python lacks into a
target folder, never touching torch, triton or numpy.

    python3 benchmarks/gpu_check/install_wheels.py [--wheels .whl] [--target /tmp/stc-site]

A wheel is installed when its distribution is missing here, or (grpcio, protobuf) older than
the wheel: stc's generated gRPC code needs grpcio >= 1.85.1 and protobuf >= 7.35. Prints the
``export PYTHONPATH=...`` line to use (the Makefile does it). Exit 1 if pip fails.
"""

from __future__ import annotations

import argparse
import importlib.metadata as md
import subprocess
import sys
from pathlib import Path

NEVER = {"torch", "triton", "numpy"}
UPGRADE_IF_OLDER = {"grpcio", "protobuf"}


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def _version_tuple(v: str) -> tuple:
    out = []
    for part in v.split("+")[0].split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        out.append(int(digits) if digits else 0)
    return tuple(out)


def plan(wheels: list[Path]) -> list[tuple[Path, str]]:
    """(wheel, reason) for each wheel to install."""
    todo = []
    for w in wheels:
        name, version = w.name.split("-")[:2]
        dist = _norm(name)
        if dist in NEVER:
            continue
        try:
            have = md.version(dist)
        except md.PackageNotFoundError:
            todo.append((w, f"{dist} absent"))
            continue
        if dist in UPGRADE_IF_OLDER and _version_tuple(have) < _version_tuple(version):
            todo.append((w, f"{dist} {have} < {version}"))
    return todo


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--wheels", type=Path, default=Path(".whl"))
    ap.add_argument("--target", type=Path, default=Path("/tmp/stc-site"))
    a = ap.parse_args(argv)
    wheels = sorted(a.wheels.glob("*.whl"))
    if not wheels:
        print(f"install_wheels: no wheels in {a.wheels} (run `make gpu-wheels` on the CPU "
              "machine and carry .whl)", file=sys.stderr)
        return 1
    todo = plan(wheels)
    for w, why in todo:
        print(f"install_wheels: {w.name} ({why})", flush=True)
    if todo:
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps",
               "--no-compile", "--no-cache-dir", "--upgrade", "--target", str(a.target),
               *[str(w) for w, _ in todo]]
        if subprocess.run(cmd).returncode != 0:
            return 1
    print(f"install_wheels: {len(todo)} of {len(wheels)} wheels installed into {a.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
