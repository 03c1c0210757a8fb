"""Receive a client-streamed bundle into a staging file, checked chunk by chunk.

One implementation for every service that takes a bundle as a stream of chunks (the
repository service's Upload, the edge agent's Deploy): the first chunk announces the SHA-256
(and optionally the total size) of the whole file, later chunks carry data only; the file never
grows past ``max_bytes``; on any error the staging file is removed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import grpc
from stc.server.errors import ServingError, exhausted, invalid

_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def check_announced(first, max_bytes: int, what: str) -> str:
    """The announced SHA-256 of the first chunk (lower case), after the checks that need no
    data: the chunk exists, the digest is 64 hex digits, the announced size is within bounds.

    Raises:
        ServingError: INVALID_ARGUMENT (no chunk, bad digest), RESOURCE_EXHAUSTED (too big).
    """
    if first is None:
        raise invalid(f"empty {what}: the first chunk must carry the bundle's sha256")
    want = first.sha256.lower()
    if not _HEX64.match(want):
        raise invalid("sha256 must be 64 hex digits (SHA-256 of the whole bundle)")
    if first.total_size > max_bytes:
        raise exhausted(f"bundle of {first.total_size} bytes exceeds the limit of "
                        f"{max_bytes} bytes")
    return want


def receive(first, chunks: Iterator, staged: Path, *, want: str, max_bytes: int,
            first_only: tuple[str, ...], what: str, mismatch: str) -> tuple[str, int]:
    """Write ``first`` and the rest of ``chunks`` to ``staged``; returns (sha256 hex, bytes).

    Args:
        first: the first chunk (already read); ``chunks``: the remaining ones.
        want: the announced digest (:func:`check_announced`).
        first_only: fields only the first chunk may set (e.g. name, version, sha256).
        what: "upload" | "deploy" (in messages); mismatch: what a digest mismatch means for
            the caller (appended to the DATA_LOSS message).

    Raises:
        ServingError: INVALID_ARGUMENT (a later chunk sets a first-only field, the size
            differs from the announced one), RESOURCE_EXHAUSTED (over ``max_bytes``),
            DATA_LOSS (digest mismatch). The staging file is removed on any error.
    """
    digest, size = hashlib.sha256(), 0
    try:
        with open(staged, "wb") as f:
            chunk = first
            while chunk is not None:
                if chunk is not first and any(getattr(chunk, k) for k in first_only):
                    raise invalid(f"only the first {what} chunk may set "
                                  f"{'/'.join(first_only)}")
                size += len(chunk.data)
                if size > max_bytes:
                    raise exhausted(f"bundle exceeds the limit of {max_bytes} bytes")
                digest.update(chunk.data)
                f.write(chunk.data)
                chunk = next(chunks, None)
        if first.total_size and size != first.total_size:
            raise invalid(f"received {size} bytes, first chunk announced {first.total_size}")
        got = digest.hexdigest()
        if got != want:
            raise ServingError(grpc.StatusCode.DATA_LOSS,
                               f"bundle SHA-256 mismatch: received {got}, expected {want}; "
                               f"{mismatch}")
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    return got, size
