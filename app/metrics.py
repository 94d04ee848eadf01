"""Prometheus metrics: request counts and latencies, plus queue gauges read from the database.

Each app owns its :class:`CollectorRegistry` (no process-global registry), so several apps in
one process (tests) never collide.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from app.domain import JobStatus

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class _StoreCollector(Collector):
    """Jobs by status, sweep records and the meta-learner version, read at scrape time."""

    def __init__(self, services: Callable[[], Any]) -> None:
        self._services = services

    def collect(self) -> Iterator[GaugeMetricFamily]:
        services = self._services()
        if services is None:
            return
        jobs = GaugeMetricFamily("autodistiller_jobs", "jobs by status", labels=["status"])
        counts = services.store.jobs.count_by_status()
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status.value, 0))
        yield jobs
        yield GaugeMetricFamily(
            "autodistiller_sweep_records", "sweep records stored", value=services.store.sweep_records.count()
        )
        active = services.store.meta_learners.active()
        yield GaugeMetricFamily(
            "autodistiller_meta_learner_version",
            "active meta-learner version (0: none)",
            value=active.version if active else 0,
        )
        executor = services.executor
        yield GaugeMetricFamily(
            "autodistiller_executor_up",
            "1 when this process runs an executor",
            value=1 if executor is not None and executor.alive() else 0,
        )


class Metrics:
    def __init__(self, services: Callable[[], Any]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "autodistiller_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "autodistiller_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.registry.register(_StoreCollector(services))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware (keeps streaming responses streaming)."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], path, str(status)).inc()
            self.metrics.latency.labels(scope["method"], path).observe(time.perf_counter() - start)
