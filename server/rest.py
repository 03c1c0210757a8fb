"""The HTTP/REST flavour of the Open Inference Protocol (KServe v2), on Starlette + uvicorn.

Endpoints (kserve/open-inference-protocol REST spec; Triton's extensions for config,
statistics and the repository, which ``tritonclient.http`` calls):

- ``GET /v2/health/live``, ``GET /v2/health/ready``: 200 when live / ready, else 400.
- ``GET /v2``: server metadata.
- ``GET /v2/models/{name}[/versions/{v}]``: model metadata; ``.../ready``: 200 or 400;
  ``.../config``, ``.../stats``: Triton's model configuration and statistics.
- ``POST /v2/models/{name}[/versions/{v}]/infer``: inference with JSON tensors
  (``{"name", "datatype", "shape", "data"}``, data flat or nested, row-major) and Triton's
  binary-data extension: with the ``Inference-Header-Content-Length: N`` header the first N
  body bytes are the JSON request and the rest holds, in input order, the raw little-endian
  bytes of every input whose ``parameters.binary_data_size`` is set. Outputs come back as JSON
  ``data`` unless an output asks ``parameters.binary_data: true`` or the request sets
  ``parameters.binary_data_output: true``; binary outputs are appended after the JSON
  response, whose length is then given in ``Inference-Header-Content-Length``.
- ``POST /v2/repository/index``, ``POST /v2/repository/models/{name}/load`` and
  ``.../unload``: the repository extension (403 on a read-only server).

Every request is turned into the same ``inference.ModelInferRequest`` the gRPC path receives
and run by the shared ``stc.server.core.InferenceCore``: one validation, batching and runtime
path for both transports. Errors are ``{"error": message}`` with the HTTP status of the gRPC
code (INVALID_ARGUMENT 400, UNAUTHENTICATED 401, PERMISSION_DENIED 403, NOT_FOUND 404,
RESOURCE_EXHAUSTED 429, CANCELLED 499, INTERNAL 500, UNAVAILABLE 503, DEADLINE_EXCEEDED 504).

Bounds: bodies larger than ``max_body_bytes`` get 413 (read incrementally, whatever
Content-Length claims); more than ``max_concurrency`` open connections get 503 from uvicorn;
idle keep-alive connections close after 5 s. With a token every endpoint except
``/v2/health/*`` needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import socket
import threading

import grpc
import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from stc.proto import inference_pb2 as pb
from stc.server.codec import DATATYPES
from stc.server.core import InferenceCore
from stc.server.errors import ServingError, clip, invalid, permission_denied

import stc

log = logging.getLogger("stc.server")

HEADER_LENGTH = "inference-header-content-length"
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INTERNAL: 500, grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504, grpc.StatusCode.DATA_LOSS: 400,
}


def _error(err: ServingError) -> JSONResponse:
    return JSONResponse({"error": err.message}, status_code=HTTP_STATUS.get(err.code, 500))


def _tensor_meta(t) -> dict:
    return {"name": t.name, "datatype": t.datatype, "shape": [int(d) for d in t.shape]}


# -- request body -> ModelInferRequest ---------------------------------------------------------
def _parameter(target, key: str, value) -> None:
    """Set ``target[key]`` (an InferParameter map) from a JSON value."""
    p = target[key]
    if isinstance(value, bool):
        p.bool_param = value
    elif isinstance(value, int):
        if value >= 0 and value >= 1 << 63:
            p.uint64_param = value
        else:
            p.int64_param = value
    elif isinstance(value, float):
        p.double_param = value
    elif isinstance(value, str):
        p.string_param = value
    else:
        raise invalid(f"parameter {clip(key)} must be a bool, number or string")


def _flat_values(data, datatype: str, count: int, name: str) -> bytes:
    """Raw little-endian bytes of JSON ``data`` (flat or nested lists) as ``datatype``."""
    if datatype not in DATATYPES:
        raise invalid(f"input {clip(name)}: datatype {clip(datatype)} is not supported")
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, RecursionError):
        raise invalid(f"input {clip(name)}: data is not a rectangular list of numbers") from None
    if arr.dtype.kind not in "biuf":
        raise invalid(f"input {clip(name)}: data must hold numbers (or booleans for BOOL)")
    if arr.size != count:
        raise invalid(f"input {clip(name)} has {arr.size} values in data, expected {count} for "
                      "its shape")
    dtype = DATATYPES[datatype]
    if dtype.kind in "iu" and arr.size:
        info = np.iinfo(dtype)
        if arr.dtype.kind == "f" or arr.min() < info.min or arr.max() > info.max:
            raise invalid(f"input {clip(name)} has values outside {datatype}")
    return np.ascontiguousarray(arr.ravel(), dtype=dtype).tobytes()


def build_request(doc: dict, binary: bytes, name: str, version: str) -> pb.ModelInferRequest:
    """The ModelInferRequest for a REST inference body (JSON ``doc`` + binary section).

    Raises:
        ServingError: INVALID_ARGUMENT for a malformed body (names what is wrong).
    """
    if not isinstance(doc, dict):
        raise invalid("request body must be a JSON object with an 'inputs' list")
    req = pb.ModelInferRequest(model_name=name, model_version=version)
    if isinstance(doc.get("id"), str):
        req.id = doc["id"]
    for key in ("parameters", "outputs"):
        kind = dict if key == "parameters" else list
        if doc.get(key) is not None and not isinstance(doc[key], kind):
            raise invalid(f"'{key}' must be a JSON {'object' if kind is dict else 'list'}")
    for key, value in (doc.get("parameters") or {}).items():
        if key not in ("binary_data_output",):
            _parameter(req.parameters, key, value)
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise invalid("request body needs a non-empty 'inputs' list")
    offset = 0
    for tensor in inputs:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str) \
                or not isinstance(tensor.get("datatype"), str) \
                or not isinstance(tensor.get("shape"), list) \
                or not all(isinstance(d, int) and not isinstance(d, bool)
                           for d in tensor["shape"]):
            raise invalid("every input needs 'name' (string), 'datatype' (string) and 'shape' "
                          "(list of integers)")
        shape = tensor["shape"]
        if any(d < 0 for d in shape):
            raise invalid(f"input {clip(tensor['name'])} has a negative dimension in {clip(shape)}")
        req.inputs.add(name=tensor["name"], datatype=tensor["datatype"], shape=shape)
        params = tensor.get("parameters") or {}
        if not isinstance(params, dict):
            raise invalid(f"input {clip(tensor['name'])}: 'parameters' must be a JSON object")
        size = params.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise invalid(f"input {clip(tensor['name'])}: binary_data_size {clip(size)} does "
                              f"not fit the {len(binary) - offset} binary bytes left")
            req.raw_input_contents.append(binary[offset:offset + size])
            offset += size
        elif "data" in tensor:
            count = math.prod(shape)  # data holds at most what the bounded body holds
            req.raw_input_contents.append(_flat_values(tensor["data"], tensor["datatype"],
                                                       count, tensor["name"]))
        else:
            raise invalid(f"input {clip(tensor['name'])} has neither 'data' nor "
                          "parameters.binary_data_size")
    if offset != len(binary):
        raise invalid(f"{len(binary) - offset} binary bytes after the inputs' "
                      "binary_data_size; expected none")
    for out in doc.get("outputs") or []:
        if not isinstance(out, dict) or not isinstance(out.get("name"), str) \
                or not isinstance(out.get("parameters") or {}, dict):
            raise invalid("every requested output needs a 'name' (string) and optional "
                          "'parameters' (object)")
        req.outputs.add(name=out["name"])
    return req


def _binary_outputs(doc: dict) -> dict[str, bool]:
    """Output name -> answer as binary (per-output ``binary_data`` or the request default)."""
    default = bool((doc.get("parameters") or {}).get("binary_data_output", False))
    chosen = {}
    for out in doc.get("outputs") or []:
        params = out.get("parameters") or {}
        chosen[out["name"]] = bool(params.get("binary_data", default))
    chosen[""] = default
    return chosen


def encode_response(resp: pb.ModelInferResponse, binary: dict[str, bool]) -> Response:
    """JSON (and binary section) of a ModelInferResponse, as Triton's REST server answers."""
    body = {"model_name": resp.model_name, "model_version": resp.model_version,
            "outputs": []}
    if resp.id:
        body["id"] = resp.id
    blobs = []
    for tensor, raw in zip(resp.outputs, resp.raw_output_contents):
        entry = _tensor_meta(tensor)
        if binary.get(tensor.name, binary[""]):
            entry["parameters"] = {"binary_data_size": len(raw)}
            blobs.append(raw)
        else:
            entry["data"] = np.frombuffer(raw, dtype=DATATYPES[tensor.datatype]).tolist()
        body["outputs"].append(entry)
    header = json.dumps(body, separators=(",", ":")).encode()
    if not blobs:
        return Response(header, media_type="application/json")
    return Response(header + b"".join(blobs), media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(header))})


# -- the app ------------------------------------------------------------------------------------
class _TooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise _TooLarge
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def build_app(core: InferenceCore, *, token: str | None = None, read_only: bool = False,
              max_body_bytes: int = 65 << 20) -> Starlette:
    """The Starlette app over ``core`` (see the module docstring for routes and bounds)."""
    expected = f"Bearer {token}".encode() if token else None

    async def guard(request: Request, call):
        if expected is not None and not request.url.path.startswith("/v2/health/"):
            got = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(got, expected):
                return JSONResponse({"error": "missing or invalid 'Authorization: Bearer "
                                              "<token>' header"}, status_code=401)
        try:
            return await call(request)
        except ServingError as err:
            return _error(err)
        except _TooLarge:
            return JSONResponse({"error": f"request body exceeds {max_body_bytes} bytes"},
                                status_code=413)

    def route(path: str, fn, methods=("GET",)):
        async def endpoint(request: Request):
            return await guard(request, fn)
        return Route(path, endpoint, methods=list(methods))

    def _names(request: Request) -> tuple[str, str]:
        return request.path_params.get("name", ""), request.path_params.get("version", "")

    async def _json(request: Request) -> dict:
        body = await _read_body(request, 1 << 16)
        try:
            doc = json.loads(body) if body.strip() else {}
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise invalid("request body is not JSON") from None
        return doc if isinstance(doc, dict) else {}

    async def live(request):
        return Response(status_code=200)

    async def ready(request):
        return Response(status_code=200 if core.state.ready.is_set() else 400)

    async def server_metadata(request):
        from stc.server.inference_service import EXTENSIONS

        return JSONResponse({"name": "stc", "version": stc.__version__,
                             "extensions": EXTENSIONS})

    async def model_metadata(request):
        md = core.metadata(*_names(request))
        return JSONResponse({"name": md.name, "versions": list(md.versions),
                             "platform": md.platform,
                             "inputs": [_tensor_meta(t) for t in md.inputs],
                             "outputs": [_tensor_meta(t) for t in md.outputs]})

    async def model_ready(request):
        return Response(status_code=200 if core.model_ready(*_names(request)) else 400)

    async def model_config(request):
        from google.protobuf.json_format import MessageToDict

        cfg = core.config(*_names(request)).config
        return JSONResponse(MessageToDict(cfg, preserving_proto_field_name=True))

    async def model_stats(request):
        from google.protobuf.json_format import MessageToDict

        stats = core.statistics(*_names(request))
        return JSONResponse(MessageToDict(stats, preserving_proto_field_name=True))

    async def infer(request: Request):
        name, version = _names(request)
        body = await _read_body(request, max_body_bytes)
        header_len = request.headers.get(HEADER_LENGTH)
        if header_len is not None:
            if not header_len.isdigit() or int(header_len) > len(body):
                raise invalid(f"{HEADER_LENGTH} {clip(header_len)} does not fit the "
                              f"{len(body)}-byte body")
            split = int(header_len)
        else:
            split = len(body)
        try:
            doc = json.loads(body[:split])
        except (ValueError, UnicodeDecodeError, RecursionError) as e:  # also nesting bombs
            raise invalid(f"request JSON does not parse: {clip(str(e), 120)}") from None
        req = build_request(doc, body[split:], name, version)
        resp = await run_in_threadpool(core.infer, req)
        return encode_response(resp, _binary_outputs(doc))

    async def repo_index(request):
        doc = await _json(request)
        index = core.index(bool(doc.get("ready", False)))
        return JSONResponse([{"name": m.name, "version": m.version, "state": m.state,
                              **({"reason": m.reason} if m.reason else {})}
                             for m in index.models])

    def admin(action):
        async def handler(request):
            if read_only:
                raise permission_denied("the server is read-only (--read-only): repository "
                                        "changes are switched off")
            doc = await _json(request)
            params = doc.get("parameters") or {}
            name = request.path_params["name"]
            if action == "load":
                await run_in_threadpool(core.load, name, params)
            else:
                await run_in_threadpool(core.unload, name)
            return Response(status_code=200)
        return handler

    routes = [
        route("/v2/health/live", live), route("/v2/health/ready", ready),
        route("/v2", server_metadata),
        route("/v2/models/stats", model_stats),
        route("/v2/models/{name}", model_metadata),
        route("/v2/models/{name}/versions/{version}", model_metadata),
        route("/v2/models/{name}/ready", model_ready),
        route("/v2/models/{name}/versions/{version}/ready", model_ready),
        route("/v2/models/{name}/config", model_config),
        route("/v2/models/{name}/versions/{version}/config", model_config),
        route("/v2/models/{name}/stats", model_stats),
        route("/v2/models/{name}/versions/{version}/stats", model_stats),
        route("/v2/models/{name}/infer", infer, ("POST",)),
        route("/v2/models/{name}/versions/{version}/infer", infer, ("POST",)),
        route("/v2/repository/index", repo_index, ("POST",)),
        route("/v2/repository/models/{name}/load", admin("load"), ("POST",)),
        route("/v2/repository/models/{name}/unload", admin("unload"), ("POST",)),
    ]
    return Starlette(routes=routes)


class RestServer:
    """uvicorn serving ``build_app(core, ...)`` in a background thread.

    Args:
        core: the shared InferenceCore. host, port: bind address (port 0 = a free port).
        token, read_only, max_body_bytes: see ``build_app``.
        tls_cert, tls_key: PEM files enabling HTTPS.
        max_concurrency: open connections before uvicorn answers 503.

    Raises:
        RuntimeError (from ``start``): the port cannot be bound or uvicorn does not start.
    """

    def __init__(self, core: InferenceCore, *, host: str = "127.0.0.1", port: int = 8000,
                 token: str | None = None, read_only: bool = False,
                 tls_cert: str | None = None, tls_key: str | None = None,
                 max_body_bytes: int = 65 << 20, max_concurrency: int = 288) -> None:
        import uvicorn

        self.app = build_app(core, token=token, read_only=read_only,
                             max_body_bytes=max_body_bytes)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise RuntimeError(f"cannot bind {host}:{port} for REST: {e}") from None
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False,
                                limit_concurrency=max_concurrency, timeout_keep_alive=5,
                                ssl_certfile=tls_cert, ssl_keyfile=tls_key, lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="stc-rest", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self, timeout: float = 10.0) -> int:
        """Start serving; returns the bound port."""
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.01)):
            if self.server.started:
                return self.port
            if not self._thread.is_alive():
                break
            deadline.wait(0.01)
        raise RuntimeError("the REST server did not start")

    def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, finish open requests (up to ``grace`` s), close the socket."""
        self.server.should_exit = True
        self._thread.join(grace + 1)
        if self._thread.is_alive():
            self.server.force_exit = True
            self._thread.join(2)
        self.sock.close()
