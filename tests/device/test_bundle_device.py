"""The device client running a bundle's fronts in ONNX Runtime against the native edge: at
every cut the edge's answer to the ONNX boundary equals the torch model's, every reply is
checked as before, and when the edge is gone the frame is finished in ONNX Runtime (by the
bundle's back half, or by the whole model where the bundle has no backs)."""

from __future__ import annotations

import asyncio
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
from coinfer.device.runners import OnnxRunner
from coinfer.edge.process import BackgroundServer
from coinfer.edge.store import ModelStore
from coinfer.graph.outputs import output_tensors
from coinfer.policies.types import Action
from coinfer.zoo.spec import ModelSpec

SPEC = ModelSpec("mlp", (("depth", 4), ("width", 64)))


@pytest.fixture(scope="module")
def setup() -> ModelSetup:
    return load_model(SPEC)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bundles")
    export_bundle(ExportConfig(SPEC, root / "both"))
    export_bundle(ExportConfig(SPEC, root / "fronts", parts="fronts"))
    return {"both": root / "both", "fronts": root / "fronts"}


def _client(setup: ModelSetup, bundle: Path, address: tuple[str, int] | None) -> DeviceClient:
    runner = OnnxRunner(OnnxBundle(bundle, threads=1))
    return DeviceClient(
        setup.name,
        setup.part,
        [0.0] * setup.part.num_cuts,
        Endpoint(address) if address else None,
        options=ClientOptions(emulate=False, edge_timeout_s=10.0),
        runners={None: runner},
    )


def _same(got: list[np.ndarray], want: list[torch.Tensor]) -> bool:
    return all(
        isinstance(g, np.ndarray)
        and g.shape == tuple(w.shape)
        and float(np.max(np.abs(g - w.numpy()))) <= TOLERANCE * float(w.abs().max())
        for g, w in zip(got, want, strict=True)
    )


def test_every_cut_offloads_an_onnx_boundary_and_gets_the_models_answer(
    setup: ModelSetup, bundles: dict[str, Path]
) -> None:
    x = torch.randn(1, 64, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = output_tensors(setup.net(x))
    with BackgroundServer(ModelStore([SPEC])) as server:
        client = _client(setup, bundles["both"], server.address)

        async def frames() -> list:
            try:
                out = []
                for cut in range(setup.part.num_cuts):
                    record = await client.frame(cut, [x.numpy()], Action(cut))
                    out.append((record, client.outputs[-1]))
                return out
            finally:
                await client.close()

        done = asyncio.run(frames())
    for cut, (record, outputs) in enumerate(done):
        assert not record.fallback, record.error
        assert record.offloaded == (cut < setup.part.last)
        assert _same(outputs, want), cut


@pytest.mark.parametrize("bundle", ["both", "fronts"])
def test_with_the_edge_gone_the_frame_is_finished_in_onnx_runtime(
    setup: ModelSetup, bundles: dict[str, Path], bundle: str
) -> None:
    x = torch.randn(1, 64, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        want = output_tensors(setup.net(x))
    with BackgroundServer(ModelStore([SPEC])) as server:
        address = server.address
    # nothing listens there now
    client = _client(setup, bundles[bundle], address)
    runner = client.path(None).runner
    assert isinstance(runner, OnnxRunner)
    assert runner.fronts.has_back(2) == (bundle == "both")

    async def frame() -> tuple:
        try:
            record = await client.frame(0, [x.numpy()], Action(2))
            return record, client.outputs[-1]
        finally:
            await client.close()

    record, outputs = asyncio.run(frame())
    assert record.fallback and not record.offloaded and "refused" in (record.error or "")
    assert _same(outputs, want)


# the device below runs with every import of torch failing: what it needs of coinfer loads
# without torch (the bundle, its cut table, the client, the preflight, a registry policy, the
# one loop); the edge is this process's
TORCHLESS_DEVICE = """
import json, sys
sys.modules["torch"] = None  # any `import torch` from here on raises ImportError
from coinfer.bundle.runtime import OnnxBundle, example_inputs
from coinfer.bundle.view import partitions
from coinfer.device.client import ClientOptions, DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.device.live_env import LiveEnv
from coinfer.device.preflight import preflight
from coinfer.device.runners import OnnxRunner
from coinfer.latency.devices import resolve_device
from coinfer.latency.link import Link
from coinfer.latency.predict import CutCostModel
from coinfer.policies import registry
from coinfer.policies.loop import run_loop
from coinfer.policies.registry import Knowledge

bundle, host, port, policy_name = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fronts = OnnxBundle(bundle, threads=1)
whole = partitions(fronts.manifest)[None]
# a device far slower than the link: offloading pays, whatever the loopback's measured RTT
device, edge = resolve_device("rpi3/1000"), resolve_device("edge-pc")
front_s = CutCostModel(whole, device, edge).device_s
client = DeviceClient(
    fronts.manifest.name, whole, front_s, Endpoint((host, port)),
    options=ClientOptions(emulate=False), runners={None: OnnxRunner(fronts)},
)
x = example_inputs(fronts.manifest.inputs)
env = LiveEnv(client, [x] * 24)
found = env.run(preflight(client, x))
link = Link.constant(found.uplink_bps, found.rtt_s)
knowledge = Knowledge.starting(whole, front_s, device, edge, link, "live")
run_loop(env, registry.create(policy_name, knowledge), 24)
env.close()
whole_model = fronts.whole(x)
print(json.dumps({
    "frames": len(env.records),
    "offloaded": sum(r.offloaded for r in env.records),
    "fallbacks": sum(r.fallback for r in env.records),
    "cuts": sorted({r.cut for r in env.records}),
    "same": all(
        float(abs(a - b).max()) <= 1e-4 * float(abs(b).max())
        for a, b in zip(client.outputs[-1], whole_model)
    ),
    "torch": sorted(
        m for m, mod in sys.modules.items()
        if (m == "torch" or m.startswith("torch.")) and mod is not None
    ),
}))
"""


@pytest.mark.parametrize("policy", ["mulinucb-link", "neurosurgeon"])
def test_a_device_without_torch_learns_its_cut_live_against_the_edge(
    bundles: dict[str, Path], policy: str
) -> None:
    import json
    import subprocess
    import sys

    with BackgroundServer(ModelStore([SPEC])) as server:
        host, port = server.address
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                TORCHLESS_DEVICE,
                str(bundles["fronts"]),
                host,
                str(port),
                policy,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["torch"] == []
    assert result["frames"] == 24 and result["fallbacks"] == 0
    assert result["offloaded"] > 0  # the edge answered the ONNX boundaries
    assert result["same"]  # the last frame's answer is the whole model's
