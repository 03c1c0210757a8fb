"""Bearer-token authentication as a gRPC server interceptor.

Every call must carry metadata ``authorization: Bearer <token>``; otherwise it ends with
UNAUTHENTICATED before reaching a servicer. Health checks (``/grpc.health.v1.Health/``) are
exempt by default so load balancers can probe without the secret. Tokens are compared with
``hmac.compare_digest`` (constant time).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

import grpc

DEFAULT_EXEMPT = ("/grpc.health.v1.Health/",)


def _deny(message: str):
    def handler(request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    return handler


class TokenAuthInterceptor(grpc.ServerInterceptor):
    """Reject calls without ``authorization: Bearer <token>``.

    Args:
        token: the shared secret (non-empty).
        exempt_prefixes: method-path prefixes that need no token.

    Raises:
        ValueError: empty token.
    """

    def __init__(self, token: str, exempt_prefixes: Sequence[str] = DEFAULT_EXEMPT) -> None:
        if not token:
            raise ValueError("token must be a non-empty string")
        self._expected = f"Bearer {token}".encode()
        self._exempt = tuple(exempt_prefixes)

    def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        if method.startswith(self._exempt):
            return continuation(handler_call_details)
        values = [v for k, v in (handler_call_details.invocation_metadata or ())
                  if k == "authorization"]
        if values and hmac.compare_digest(str(values[0]).encode(), self._expected):
            return continuation(handler_call_details)
        handler = continuation(handler_call_details)
        message = "missing or invalid 'authorization: Bearer <token>' metadata"
        if handler is None:
            return None
        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(_deny(message))
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(_deny(message))
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(_deny(message))
        return grpc.unary_unary_rpc_method_handler(_deny(message))
