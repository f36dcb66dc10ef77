"""The service's Prometheus metrics (``GET /metrics``), kept by ``prometheus_client``.

==================================================  =========  ===============================
metric                                              type       labels
==================================================  =========  ===============================
``query_predictor_requests_total``                  counter    ``endpoint``, ``status``
``query_predictor_request_duration_seconds``        histogram  ``endpoint``
``query_predictor_decisions_total``                 counter    ``routing_group``, ``stage``
``query_predictor_decision_tags_total``             counter    ``client_tags``
``query_predictor_errors_total``                    counter    ``kind``
``query_predictor_route_batch_size``                histogram  (routing calls answered at once)
``query_predictor_model_info``                      gauge      ``version`` (1: serving, 0: was)
``query_predictor_model_load_seconds``              gauge      (time the last load took)
``query_predictor_model_loaded_timestamp_seconds``  gauge      (when the last load finished)
==================================================  =========  ===============================

``endpoint`` is the path of a known endpoint or ``other``, so a scan of random paths cannot
grow the label set. ``decision_tags_total`` counts the decisions sent back as a client tag:
``client_tags="appended"`` after tags the client sent, ``"alone"`` when it sent none (zero
for both when ``serve --no-decision-tag``). ``route_batch_size`` counts the batches of
routing calls the model scored together (:class:`~query_predictor.service.app.RouteBatch`):
mostly 1 while the service keeps up, larger under load. With several workers (``serve --workers N``)
every worker writes its values to the directory named by ``PROMETHEUS_MULTIPROC_DIR`` (set
by the supervisor before the workers start) and ``/metrics`` adds them up, whichever worker
answers; the gauges then carry a ``pid`` label, one sample per live worker.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# an answer takes a few hundred microseconds; the buckets resolve that and a slow tail
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)


class Metrics:
    """One registry of the service's metrics (one per app, so tests can run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.requests = Counter(
            "query_predictor_requests",
            "HTTP requests answered, by endpoint and status",
            ["endpoint", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "query_predictor_request_duration_seconds",
            "Seconds from the request's headers to its answer, by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.decisions = Counter(
            "query_predictor_decisions",
            "Routing decisions of /v1/route, by routing group and deciding stage",
            ["routing_group", "stage"],
            registry=registry,
        )
        self.decision_tags = Counter(
            "query_predictor_decision_tags",
            "Decisions sent back as a client tag, by whether the client sent tags of its own",
            ["client_tags"],
            registry=registry,
        )
        self.errors = Counter(
            "query_predictor_errors",
            "Requests answered with an error, and failed bundle reloads, by kind",
            ["kind"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "query_predictor_route_batch_size",
            "Routing calls answered together, with one run of the model",
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.model_info = Gauge(
            "query_predictor_model_info",
            "The model bundle served (1) and the ones served before (0), by version",
            ["version"],
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.load_seconds = Gauge(
            "query_predictor_model_load_seconds",
            "Seconds the last model bundle load took",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self.loaded_at = Gauge(
            "query_predictor_model_loaded_timestamp_seconds",
            "Unix time the last model bundle load finished",
            registry=registry,
            multiprocess_mode="liveall",
        )
        self._version: str | None = None
        # labelled children by label values: ``labels()`` costs more than the update itself
        self._requests: dict[tuple[str, int], Counter] = {}
        self._latency: dict[str, Histogram] = {}
        self._decisions: dict[tuple[str, str], Counter] = {}
        self._tags = {True: self.decision_tags.labels("appended")}
        self._tags[False] = self.decision_tags.labels("alone")

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """One answered request: its endpoint (bounded set), status and duration."""
        key = (endpoint, status)
        requests = self._requests.get(key)
        if requests is None:
            requests = self._requests[key] = self.requests.labels(endpoint, str(int(status)))
        requests.inc()
        latency = self._latency.get(endpoint)
        if latency is None:
            latency = self._latency[endpoint] = self.latency.labels(endpoint)
        latency.observe(seconds)

    def decided(self, group: str, stage: str) -> None:
        """One routing decision."""
        key = (group, stage)
        decisions = self._decisions.get(key)
        if decisions is None:
            decisions = self._decisions[key] = self.decisions.labels(group, stage)
        decisions.inc()

    def tagged(self, appended: bool) -> None:
        """One decision tag sent; ``appended``: after the client's own tags."""
        self._tags[appended].inc()

    def model_loaded(self, version: str, seconds: float) -> None:
        """Record that ``version`` is now served; it took ``seconds`` to load."""
        if self._version is not None and self._version != version:
            self.model_info.labels(self._version).set(0)
        self.model_info.labels(version).set(1)
        self.load_seconds.set(seconds)
        self.loaded_at.set(time.time())
        self._version = version

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes; with workers, the sum over all of them."""
        if not self.multiprocess:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        return generate_latest(merged)
