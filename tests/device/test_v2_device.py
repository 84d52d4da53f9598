"""coinfer's device over the Open Inference Protocol v2: against a real KServe model server
(``kserve.ModelServer`` in its own process, unchanged) serving a bundle's exported back halves
through ``coinfer.integrations.kserve`` — every cut's answer bit-exact with the exported back
run here, and equal to the torch model's within the export's tolerance — and against coinfer's
own edge on ``--http-port``, whose preflight refuses a model of other weights."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from coinfer.assembly import ModelSetup, load_model
from coinfer.bundle.export import ExportConfig, export_bundle
from coinfer.bundle.manifest import TOLERANCE
from coinfer.bundle.runtime import OnnxBundle
from coinfer.device.client import ClientOptions, DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.device.preflight import PreflightError, preflight
from coinfer.device.runners import OnnxRunner
from coinfer.edge.options import ServerOptions
from coinfer.edge.process import BackgroundServer
from coinfer.edge.store import ModelStore
from coinfer.graph.outputs import output_tensors
from coinfer.graph.partitioning import partition
from coinfer.policies.types import Action
from coinfer.zoo.spec import ModelSpec
from tests.device.test_bundle_device import run_without_torch

SPEC = ModelSpec("mlp", (("depth", 4), ("width", 64)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def setup() -> ModelSetup:
    return load_model(SPEC)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("v2") / "mlp"
    export_bundle(ExportConfig(SPEC, folder))
    return folder


@pytest.fixture(scope="module")
def kserve(bundle: Path) -> Iterator[tuple[str, int]]:
    port = _free_port()
    command = [sys.executable, "-m", "coinfer.integrations.kserve", str(bundle)]
    args = ["--http_port", str(port), "--grpc_port", str(_free_port()), "--enable_grpc", "false"]
    proc = subprocess.Popen(
        [*command, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready") as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"KServe did not start: {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
            time.sleep(0.2)
        yield ("127.0.0.1", port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _client(setup: ModelSetup, bundle: Path, address: tuple[str, int]) -> DeviceClient:
    return DeviceClient(
        setup.name,
        setup.part,
        [0.0] * setup.part.num_cuts,
        Endpoint(address, protocol="v2"),
        options=ClientOptions(emulate=False, edge_timeout_s=30.0),
        runners={None: OnnxRunner(OnnxBundle(bundle, threads=1))},
    )


def test_kserve_serving_the_exported_backs_answers_every_cut_bit_exact(
    setup: ModelSetup, bundle: Path, kserve: tuple[str, int]
) -> None:
    local = OnnxBundle(bundle, threads=1)
    x = np.random.default_rng(4).standard_normal((1, 64)).astype(np.float32)
    with torch.no_grad():
        (torch_says,) = output_tensors(setup.torch_net(torch.from_numpy(x)))
    client = _client(setup, bundle, kserve)

    async def run() -> list:
        try:
            found = await preflight(client, [x])  # live, every cut served as the device's
            assert found.rtt_s > 0 and found.uplink_bps
            done = []
            for cut in range(setup.part.last):
                record = await client.frame(cut, [x], Action(cut))
                done.append((cut, record, client.outputs[-1]))
            return done
        finally:
            await client.close()

    for cut, record, outputs in asyncio.run(run()):
        assert record.offloaded and not record.fallback, (cut, record.error)
        (want,) = local.back(cut, local.front(cut, [x])) if cut else local.back(0, [x])
        (got,) = outputs
        assert np.array_equal(got, want), cut  # the exported back, as KServe ran it
        scale = float(torch_says.abs().max())
        assert float(np.abs(got - torch_says.numpy()).max()) <= TOLERANCE * scale


def test_a_device_without_torch_runs_live_against_kserve(
    bundle: Path, kserve: tuple[str, int]
) -> None:
    host, port = kserve
    doc, loaded, _ = run_without_torch(
        "--bundle", str(bundle), "--edge", f"http://{host}:{port}", "-p", "mulinucb-link",
        "-n", "20", "--device", "rpi3/1000",
    )  # fmt: skip
    assert loaded == []
    assert doc["frames"] == 20 and doc["fallbacks"] == 0 and doc["offloaded"] > 0
    assert doc["config"]["protocol"] == "v2"


def test_over_v2_the_preflight_refuses_an_edge_of_other_weights(
    setup: ModelSetup, bundle: Path
) -> None:
    net = load_model(SPEC).torch_net
    with torch.no_grad():
        next(net.parameters()).add_(0.01)  # the same model, other weights
    other = ModelStore.of({"mlp": (partition(net, setup.inputs), setup.inputs)})
    with BackgroundServer(other, ServerOptions(http_port=0)) as edge:
        address = edge.server.http_address
        assert address is not None
        client = _client(setup, bundle, address)
        x = np.zeros((1, 64), np.float32)

        async def check() -> None:
            try:
                await preflight(client, [x])
            finally:
                await client.close()

        with pytest.raises(PreflightError, match="not this device's model"):
            asyncio.run(check())


def test_coinfer_edge_over_v2_gives_the_native_answer(setup: ModelSetup, bundle: Path) -> None:
    x = np.random.default_rng(5).standard_normal((1, 64)).astype(np.float32)
    with BackgroundServer(ModelStore([SPEC]), ServerOptions(http_port=0)) as edge:
        native = DeviceClient(
            setup.name,
            setup.part,
            [0.0] * setup.part.num_cuts,
            Endpoint(edge.address),
            options=ClientOptions(emulate=False),
            runners={None: OnnxRunner(OnnxBundle(bundle, threads=1))},
        )
        assert edge.server.http_address is not None
        v2 = _client(setup, bundle, edge.server.http_address)

        async def both() -> list:
            answers = []
            for client in (native, v2):
                try:
                    for cut in range(setup.part.last):
                        record = await client.frame(cut, [x], Action(cut))
                        assert record.offloaded, record.error
                        answers.append(client.outputs[-1][0])
                finally:
                    await client.close()
            return answers

        answers = asyncio.run(both())
    half = len(answers) // 2
    for a, b in zip(answers[:half], answers[half:], strict=True):
        assert np.array_equal(a, b)  # the same back half, the same bytes, either protocol
    assert edge.server.stats.requests == 2 * half
