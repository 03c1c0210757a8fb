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
