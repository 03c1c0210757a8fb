"""Serving errors that carry a gRPC status code.

Raised by the codec, repository and batcher; the servicers turn them into
``context.abort(code, message)`` so clients see e.g. INVALID_ARGUMENT with a readable message.
"""

from __future__ import annotations

import grpc


class ServingError(Exception):
    """An error to report to the client with gRPC status ``code`` and ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __repr__(self) -> str:
        return f"ServingError({self.code.name}, {self.message!r})"


def invalid(message: str) -> ServingError:
    """INVALID_ARGUMENT: the request does not match the model's signature."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message: str) -> ServingError:
    """NOT_FOUND: unknown or unloaded model / version."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def exhausted(message: str) -> ServingError:
    """RESOURCE_EXHAUSTED: request too large, or the queue is full."""
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def unavailable(message: str) -> ServingError:
    """UNAVAILABLE: the server or model is shutting down."""
    return ServingError(grpc.StatusCode.UNAVAILABLE, message)


def permission_denied(message: str) -> ServingError:
    """PERMISSION_DENIED: the admin API is switched off (``--read-only``)."""
    return ServingError(grpc.StatusCode.PERMISSION_DENIED, message)


def deadline(message: str) -> ServingError:
    """DEADLINE_EXCEEDED: the request's deadline passed (queued or running)."""
    return ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, message)


MAX_ECHO_CHARS = 64


def clip(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """``repr`` of client-supplied ``value``, cut to ``limit`` characters (names in errors).

    Error messages echo what the client sent so it can see what was wrong; a hostile client
    could otherwise make the server copy megabytes into every error and log line.
    """
    return shorten(repr(value), limit)


def shorten(text: str, limit: int = 300) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}...({len(text)} chars)"
