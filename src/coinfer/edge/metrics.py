"""The edge's figures for Prometheus (``GET /metrics`` on the v2 port), named as inference
servers name them — Triton's ``nv_inference_*`` family as the model, in seconds and with
histograms: requests that succeeded and failed, inferences and executions (their ratio is the
mean batch size), request, queue and compute durations, requests pending — per model, cut and
exit; and coinfer's own: the memory budget in use, connections by state, evictions and
refusals, errors by code, federation groups and syncs. ``coinfer stats`` reads the same
counters (``summary``).

A request's duration runs from its last byte's arrival to its outputs ready to send; its queue
time from then to the moment the back half starts (decoding and the batching window included);
its compute time is the back half's run (the emulated slower edge's, with ``--slowdown``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

LABELS = ("model", "cut", "exit")
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def labels(model: str, cut: int, exit: int | None) -> tuple[str, str, str]:
    return model, str(cut), "" if exit is None else str(exit)


def _counts(name: str, text: str, label: str, state: dict[str, Any]) -> Metric:
    """The server's counter ``state[what]`` (a name: count map) as one labelled family."""
    family = CounterMetricFamily(name, text, labels=[label])
    for key, count in state[name.removeprefix("coinfer_")].items():
        family.add_metric([key], count)
    return family


class _State:
    """Gauges read from the server when scraped (nothing to keep in step)."""

    def __init__(self, read: Callable[[], dict[str, Any]]) -> None:
        self.read = read

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        state = self.read()
        yield GaugeMetricFamily(
            "coinfer_budget_bytes_in_use", "Memory budget held by requests", state["in_use"]
        )
        yield GaugeMetricFamily(
            "coinfer_budget_bytes_limit", "The memory budget (--max-buffer-mb)", state["limit"]
        )
        conns = GaugeMetricFamily("coinfer_connections", "Open connections", labels=["state"])
        for name, count in state["connections"].items():
            conns.add_metric([name], count)
        yield conns
        yield GaugeMetricFamily(
            "coinfer_federation_groups", "Federated learners' groups held", state["groups"]
        )
        yield _counts(
            "coinfer_events", "Connection events (evictions, refusals...)", "event", state
        )
        yield _counts("coinfer_errors", "Errors answered, by code", "code", state)


class EdgeMetrics:
    """One server's registry: ``observe`` each answered inference, ``failed`` each one that
    was admitted and failed, ``exposition()`` for a scrape."""

    def __init__(self, read_state: Callable[[], dict[str, Any]]) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.success = Counter(
            "nv_inference_request_success", "Inference requests answered", LABELS, registry=registry
        )
        self.failure = Counter(
            "nv_inference_request_failure",
            "Admitted inference requests that failed",
            LABELS,
            registry=registry,
        )
        self.count = Counter(
            "nv_inference_count", "Inferences performed (batch items)", LABELS, registry=registry
        )
        self.executions = Counter(
            "nv_inference_exec_count",
            "Back-half executions (batched requests share one)",
            LABELS,
            registry=registry,
        )
        self.request_s = Histogram(
            "nv_inference_request_duration_seconds",
            "From a request's last byte to its outputs",
            LABELS,
            buckets=BUCKETS,
            registry=registry,
        )
        self.queue_s = Histogram(
            "nv_inference_queue_duration_seconds",
            "From a request's last byte to its back half starting",
            LABELS,
            buckets=BUCKETS,
            registry=registry,
        )
        self.compute_s = Histogram(
            "nv_inference_compute_infer_duration_seconds",
            "The back half's run",
            LABELS,
            buckets=BUCKETS,
            registry=registry,
        )
        self.pending = Gauge(
            "nv_inference_pending_request_count",
            "Admitted requests not yet answered",
            LABELS,
            registry=registry,
        )
        self.syncs = Counter(
            "coinfer_federation_syncs", "SYNC messages answered", registry=registry
        )
        registry.register(_State(read_state))

    def started(self, key: tuple[str, str, str]) -> None:
        self.pending.labels(*key).inc()

    def observe(
        self,
        key: tuple[str, str, str],
        request_s: float,
        queue_s: float,
        compute_s: float,
        executions: float,
    ) -> None:
        """One answered request; ``executions``: its share of the forward it ran in."""
        self.pending.labels(*key).dec()
        self.success.labels(*key).inc()
        self.count.labels(*key).inc()
        self.executions.labels(*key).inc(executions)
        self.request_s.labels(*key).observe(request_s)
        self.queue_s.labels(*key).observe(queue_s)
        self.compute_s.labels(*key).observe(compute_s)

    def failed(self, key: tuple[str, str, str]) -> None:
        self.pending.labels(*key).dec()
        self.failure.labels(*key).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)

    def summary(self) -> dict[str, dict[str, float]]:
        """The inference counters per (model, cut, exit), as ``coinfer stats`` shows them:
        requests, failures, executions, and the mean request, queue and compute seconds."""
        rows: dict[str, dict[str, float]] = {}
        fields = {
            "nv_inference_request_success_total": "requests",
            "nv_inference_request_failure_total": "failures",
            "nv_inference_exec_count_total": "executions",
            "nv_inference_request_duration_seconds_sum": "request_s_sum",
            "nv_inference_queue_duration_seconds_sum": "queue_s_sum",
            "nv_inference_compute_infer_duration_seconds_sum": "compute_s_sum",
        }

        def row(sample_labels: dict[str, str]) -> dict[str, float]:
            exit = sample_labels.get("exit") or ""
            name = f"{sample_labels['model']} cut {sample_labels['cut']}"
            return rows.setdefault(name + (f" exit {exit}" if exit else ""), {})

        for family in self.registry.collect():
            for sample in family.samples:
                if "model" in sample.labels and sample.name in fields:
                    row(sample.labels)[fields[sample.name]] = sample.value
        for values in rows.values():
            done = values.get("requests", 0.0)
            for what in ("request", "queue", "compute"):
                total = values.pop(f"{what}_s_sum", 0.0)
                values[f"mean_{what}_s"] = total / done if done else 0.0
        return rows
