"""Regenerate the Python gRPC code of stc.proto from the .proto sources in this folder.

Usage: ``python -m stc.proto.generate [--out DIR]`` (default: this package's folder). The
``make proto`` target runs it. The .proto files are compiled under the virtual path
``stc/proto/`` (protoc ``-Istc/proto=<this folder>``), so the generated modules import each
other as ``from stc.proto import X_pb2``. One post-processing step follows: each ``*_pb2.py``
registers its file in stc's private descriptor pool (``stc.proto._pool.POOL``) instead of
protobuf's default pool, because tritonclient registers the same ``inference.*`` symbols there
(see _pool.py). Output is deterministic for one grpcio-tools version;
``tests/server/test_server_protocol_details.py`` regenerates into a temporary folder and fails
if the committed files differ byte for byte.

Raises:
    RuntimeError: protoc (grpc_tools.protoc) reports an error.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
# Every .proto in this folder (inference.proto, stc_repository.proto, and any service added
# later, e.g. for edge nodes), in sorted order.
PROTO_FILES = tuple(sorted(p.name for p in PROTO_DIR.glob("*.proto")))
VIRTUAL_PREFIX = "stc/proto"


def generated_names() -> list[str]:
    """File names (no folder) that ``generate`` writes for ``PROTO_FILES``."""
    names = []
    for proto in PROTO_FILES:
        stem = proto.removesuffix(".proto")
        names += [f"{stem}_pb2.py", f"{stem}_pb2.pyi", f"{stem}_pb2_grpc.py"]
    return names


_DEFAULT_POOL_CALL = "_descriptor_pool.Default().AddSerializedFile("
_PRIVATE_POOL_CALL = "_stc_pool.POOL.AddSerializedFile("
_POOL_IMPORT_AFTER = "from google.protobuf import descriptor_pool as _descriptor_pool\n"
_POOL_IMPORT = "from stc.proto import _pool as _stc_pool\n"


def use_private_pool(source: str) -> str:
    """Rewrite generated ``*_pb2.py`` source to register its file in ``stc.proto._pool.POOL``.

    Raises:
        RuntimeError: the source does not have the expected protoc layout (new protoc version).
    """
    if source.count(_DEFAULT_POOL_CALL) != 1 or _POOL_IMPORT_AFTER not in source:
        raise RuntimeError("unexpected protoc output: cannot redirect it to the private pool")
    source = source.replace(_POOL_IMPORT_AFTER, _POOL_IMPORT_AFTER + _POOL_IMPORT, 1)
    return source.replace(_DEFAULT_POOL_CALL, _PRIVATE_POOL_CALL, 1)


def generate(out_dir: str | Path = PROTO_DIR) -> list[Path]:
    """Compile ``PROTO_FILES`` with grpc_tools.protoc and write the modules into ``out_dir``.

    Args:
        out_dir: destination folder (created if missing).

    Returns:
        The written file paths, in ``generated_names()`` order.

    Raises:
        RuntimeError: protoc exits with a non-zero status.
    """
    from grpc_tools import protoc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    include = Path(protoc.__file__).resolve().parent / "_proto"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "grpc_tools.protoc",
            f"-I{VIRTUAL_PREFIX}={PROTO_DIR}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            *(f"{VIRTUAL_PREFIX}/{p}" for p in PROTO_FILES),
        ]
        status = protoc.main(args)
        if status != 0:
            raise RuntimeError(f"protoc failed with status {status}: {' '.join(args)}")
        written = []
        for name in generated_names():
            dst = out / name
            src = Path(tmp, VIRTUAL_PREFIX, name)
            if name.endswith("_pb2.py"):
                dst.write_bytes(use_private_pool(src.read_text()).encode())
            else:
                shutil.copyfile(src, dst)
            written.append(dst)
    return written


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point: ``python -m stc.proto.generate [--out DIR]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(PROTO_DIR), help="output folder")
    ns = parser.parse_args(argv)
    for path in generate(ns.out):
        print(path)


if __name__ == "__main__":
    main()
