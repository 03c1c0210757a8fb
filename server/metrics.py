"""Prometheus metrics of one server instance (own CollectorRegistry, so servers in one process,
e.g. tests, do not collide). Exposed over HTTP by ``ServerMetrics.serve_http(port)``.

Metrics:
- ``stc_requests_total{model, version, status}``: ModelInfer calls by gRPC status name.
- ``stc_request_latency_seconds{model}``: server-side ModelInfer latency (histogram, s).
- ``stc_batch_size{model}``: rows per executed batch (histogram); > 1 means dynamic batching
  merged requests.
- ``stc_queue_depth{model}``: requests waiting in the batching queue (gauge).
- ``stc_spikes_total{model}`` and ``stc_spikes_per_second{model}``: only for executables that
  report ``last_spike_count`` (spikes of the last infer call); spikes/s is that count divided by
  the batch's wall-clock compute time (s).
- ``stc_queue_seconds{model}`` and ``stc_compute_seconds{model}``: per request, time waiting
  for its batch and the batch's ``infer`` time (histograms, s): the queue vs compute split.
- Triton-style families, so existing Triton dashboards carry over (names and units as in
  Triton's metrics documentation; ``model`` and ``version`` labels; cumulative values, exposed
  untyped so the names carry no ``_total`` suffix): ``nv_inference_request_success``,
  ``nv_inference_request_failure``, ``nv_inference_count`` (rows),
  ``nv_inference_exec_count`` (batches), ``nv_inference_request_duration_us``,
  ``nv_inference_queue_duration_us``, ``nv_inference_compute_infer_duration_us``. They are
  read from the loaded models' ModelStats at scrape time, so they exist only for loaded models.

Cardinality: ``model``/``version`` label values come only from loaded models (requests for
unknown models are counted under ``model="_unknown", version="_unknown"``), so clients cannot
create label values. ``serve_http`` binds the server's host and, with a token, requires
``Authorization: Bearer <token>`` on /metrics.
"""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable, Iterable
from wsgiref.simple_server import make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.core import Metric
from prometheus_client.exposition import ThreadingWSGIServer, _SilentHandler

UNKNOWN = "_unknown"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """The metric families above, registered in ``self.registry``."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("stc_requests", "ModelInfer requests by model and gRPC status",
                                ["model", "version", "status"], registry=r)
        self.latency = Histogram("stc_request_latency_seconds", "ModelInfer latency (s)",
                                 ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_size = Histogram("stc_batch_size", "rows per executed batch", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.queue_depth = Gauge("stc_queue_depth", "requests waiting for a batch", ["model"],
                                 registry=r)
        self.spikes = Counter("stc_spikes", "spikes emitted by executed batches", ["model"],
                              registry=r)
        self.spike_rate = Gauge("stc_spikes_per_second",
                                "spikes of the last batch / its compute time (1/s)", ["model"],
                                registry=r)
        self.queue_time = Histogram("stc_queue_seconds", "request time waiting for its batch (s)",
                                    ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.compute_time = Histogram("stc_compute_seconds",
                                      "infer time of the batch that ran the request (s)",
                                      ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.models: Callable[[], Iterable[tuple[str, str, object]]] = lambda: ()
        r.register(_TritonCollector(self))

    def observe_batch(self, model: str, rows: int, seconds: float, spikes: int | None) -> None:
        """Record one executed batch of ``rows`` rows that took ``seconds`` (s)."""
        self.batch_size.labels(model).observe(rows)
        if spikes is not None:
            self.spikes.labels(model).inc(int(spikes))
            if seconds > 0:
                self.spike_rate.labels(model).set(int(spikes) / seconds)

    def observe_queue(self, model: str, queue_s: list[float], compute_s: float) -> None:
        """Record each request's queue time and the batch's compute time (s)."""
        for q in queue_s:
            self.queue_time.labels(model).observe(q)
            self.compute_time.labels(model).observe(compute_s)

    def observe_request(self, model: str | None, version: str | None, status: str,
                        seconds: float) -> None:
        """Record one finished ModelInfer call with gRPC ``status`` name and latency (s).

        ``model``/``version`` are the served model's (None when the request named no loaded
        model: then the ``_unknown`` label value is used, see the module docstring).
        """
        model = model or UNKNOWN
        version = version or UNKNOWN
        self.requests.labels(model, version, status).inc()
        self.latency.labels(model).observe(seconds)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of one sample (0.0 if absent), e.g. ``value("stc_batch_size_count")``."""
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def serve_http(self, port: int, addr: str = "127.0.0.1", token: str | None = None):
        """Serve ``http://addr:port/metrics`` in a daemon thread; returns the HTTP server
        (``.shutdown()`` stops it, ``.server_port`` is the bound port).

        Args:
            port: TCP port (0 = a free port). addr: bind address (the gRPC server's host).
            token: when set, requests need ``Authorization: Bearer <token>`` (else 401).
        """
        app = make_wsgi_app(self.registry)
        if token:
            expected = f"Bearer {token}".encode()

            def guarded(environ, start_response):
                got = environ.get("HTTP_AUTHORIZATION", "").encode()
                if hmac.compare_digest(got, expected):
                    return app(environ, start_response)
                start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                    ("WWW-Authenticate", "Bearer")])
                return [b"missing or invalid 'Authorization: Bearer <token>' header\n"]

            handler_app = guarded
        else:
            handler_app = app
        httpd = make_server(addr, port, handler_app, ThreadingWSGIServer,
                            handler_class=_SilentHandler)
        threading.Thread(target=httpd.serve_forever, name="stc-metrics", daemon=True).start()
        return httpd


class _TritonCollector:
    """Yields the ``nv_inference_*`` families from the loaded models' ModelStats."""

    FAMILIES = (
        ("nv_inference_request_success", "Number of successful inference requests, all batch "
         "sizes", lambda s: s["success"][0]),
        ("nv_inference_request_failure", "Number of failed inference requests, all batch sizes",
         lambda s: s["fail"][0]),
        ("nv_inference_count", "Number of inferences performed (rows)",
         lambda s: s["inference_count"]),
        ("nv_inference_exec_count", "Number of model executions performed (batches)",
         lambda s: s["execution_count"]),
        ("nv_inference_request_duration_us", "Cumulative inference request duration in "
         "microseconds", lambda s: (s["success"][1] + s["fail"][1]) // 1000),
        ("nv_inference_queue_duration_us", "Cumulative inference queuing duration in "
         "microseconds", lambda s: s["queue"][1] // 1000),
        ("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in "
         "microseconds", lambda s: s["compute_infer"][1] // 1000),
    )

    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics

    def collect(self):
        snaps = [(name, version, stats.snapshot()) for name, version, stats in
                 self.metrics.models()]
        for family, doc, get in self.FAMILIES:
            m = Metric(family, doc, "unknown")  # exact Triton names (no "_total")
            for name, version, snap in snaps:
                m.add_sample(family, {"model": name, "version": version}, float(get(snap)))
            yield m
