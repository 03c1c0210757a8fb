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
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

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

    def observe_batch(self, model: str, rows: int, seconds: float, spikes: int | None) -> None:
        """Record one executed batch of ``rows`` rows that took ``seconds`` (s)."""
        self.batch_size.labels(model).observe(rows)
        if spikes is not None:
            self.spikes.labels(model).inc(int(spikes))
            if seconds > 0:
                self.spike_rate.labels(model).set(int(spikes) / seconds)

    def observe_request(self, model: str, version: str, status: str, seconds: float) -> None:
        """Record one finished ModelInfer call with gRPC ``status`` name and latency (s)."""
        self.requests.labels(model, version, status).inc()
        self.latency.labels(model).observe(seconds)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """Current value of one sample (0.0 if absent), e.g. ``value("stc_batch_size_count")``."""
        return self.registry.get_sample_value(name, labels or {}) or 0.0

    def serve_http(self, port: int, addr: str = "0.0.0.0"):  # noqa: S104 - operator's choice
        """Start the Prometheus HTTP endpoint ``http://addr:port/metrics``; returns the server."""
        server, _thread = start_http_server(port, addr=addr, registry=self.registry)
        return server
