"""``GET /metrics``: Prometheus's own parser reads it; the inference counters count what was
asked; queue and compute time add up to the request's duration on a quiet run; the token is
needed when the server has one; and ``coinfer stats`` (STATS) reports the same numbers."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest
import tritonclient.http as triton
from prometheus_client.parser import text_string_to_metric_families

from coinfer.device.endpoint import Endpoint
from coinfer.device.requests import edge_stats
from coinfer.edge.options import ServerOptions
from coinfer.edge.process import BackgroundServer
from coinfer.edge.store import ModelStore

TOKEN = "a-metrics-token-long-enough"
AUTH = "Bearer " + TOKEN


@pytest.fixture(scope="module")
def edge() -> Iterator[BackgroundServer]:
    # AlexNet's whole model (cut 0) runs for tens of milliseconds: the loop's own handling,
    # outside queue and compute, is a small part of it even on a busy host
    with BackgroundServer(ModelStore(["alexnet"]), ServerOptions(token=TOKEN, http_port=0)) as s:
        yield s


def _scrape(edge: BackgroundServer, token: str | None = AUTH) -> dict[str, list]:
    address = edge.server.http_address
    assert address is not None
    request = urllib.request.Request(f"http://{address[0]}:{address[1]}/metrics")
    if token is not None:
        request.add_header("Authorization", token)
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = reply.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def _value(families: dict[str, list], name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` (of any family) with these labels."""
    return sum(
        s.value
        for samples in families.values()
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_metrics_parse_count_and_add_up(edge: BackgroundServer) -> None:
    address = edge.server.http_address
    assert address is not None
    client = triton.InferenceServerClient(url=f"{address[0]}:{address[1]}")
    meta = client.get_model_metadata("alexnet", headers={"Authorization": AUTH})
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    for _ in range(6):
        given = triton.InferInput(meta["inputs"][0]["name"], [1, 3, 224, 224], "FP32")
        given.set_data_from_numpy(x)
        client.infer("alexnet", [given], headers={"Authorization": AUTH})
    with pytest.raises(triton.InferenceServerException):
        client.infer("alexnet", [given])  # no token: refused, counted as an error
    families = _scrape(edge)
    key = {"model": "alexnet", "cut": "0", "exit": ""}
    success = _value(families, "nv_inference_request_success_total", **key)
    executions = _value(families, "nv_inference_exec_count_total", **key)
    assert success == 6 and executions == 6  # unbatched: one execution each
    assert _value(families, "nv_inference_pending_request_count") == 0
    total = {
        what: _value(families, f"{name}_sum", **key)
        for what, name in [
            ("request", "nv_inference_request_duration_seconds"),
            ("queue", "nv_inference_queue_duration_seconds"),
            ("compute", "nv_inference_compute_infer_duration_seconds"),
        ]
    }
    assert total["compute"] > 0 and total["queue"] > 0
    assert abs(total["queue"] + total["compute"] - total["request"]) <= 0.05 * total["request"]
    assert _value(families, "coinfer_errors_total", code="UNAUTHORIZED") >= 1
    limit = _value(families, "coinfer_budget_bytes_limit")
    assert limit == edge.server.budget.limit
    assert _value(families, "coinfer_connections", state="open") >= 1
    # coinfer stats reads the same counters
    stats = asyncio.run(edge_stats(Endpoint(edge.address, TOKEN), 30.0))
    row = stats["inference"]["alexnet cut 0"]
    assert row["requests"] == success and row["executions"] == executions
    assert row["mean_request_s"] == pytest.approx(total["request"] / success)


def test_metrics_need_the_token_when_the_server_has_one(edge: BackgroundServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        _scrape(edge, token=None)
    assert refused.value.code == 401
