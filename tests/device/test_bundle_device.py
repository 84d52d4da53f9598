"""The device client running a bundle's fronts in ONNX Runtime against the native edge: at
every cut the edge's answer to the ONNX boundary equals the torch model's, every reply is
checked as before, and when the edge is gone the frame is finished in ONNX Runtime (by the
bundle's back half, or by the whole model where the bundle has no backs)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from coinfer.arrays import seeded_arrays
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
        want = output_tensors(setup.torch_net(x))
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
        want = output_tensors(setup.torch_net(x))
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


# `coinfer run` as a device installed as coinfer[device] runs it: every import of torch, or of
# what only the `full` extra brings, fails (a finder refuses them; nothing is put in their
# place, so libraries that probe for torch see it absent, as on such a device)
WITHOUT_FULL = """
import json, sys

class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "sklearn", "skimage", "matplotlib", "av"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Absent())
from coinfer.cli import main

sys.argv = ["coinfer", "run", *sys.argv[1:]]
try:
    main()
finally:
    loaded = [m for m in sys.modules if m.split(".")[0] in ("torch", "sklearn", "skimage")]
    print(json.dumps(sorted(loaded)), file=sys.stderr)
"""


def run_without_torch(*args: str) -> tuple[dict, list[str], str]:
    """``coinfer run ARGS --json`` on a device without torch: its summary, the modules of the
    `full` extra it loaded (none), and its stderr."""
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_FULL, *args, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    loaded = json.loads(done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), loaded, done.stderr


@pytest.mark.parametrize("policy", ["mulinucb-link", "neurosurgeon"])
def test_a_device_without_torch_learns_its_cut_live_against_the_edge(
    bundles: dict[str, Path], policy: str, tmp_path: Path
) -> None:
    out = tmp_path / "results.jsonl"
    with BackgroundServer(ModelStore([SPEC])) as server:
        host, port = server.address
        # a device far slower than the link: offloading pays, whatever the loopback's RTT
        doc, loaded, _ = run_without_torch(
            "--bundle", str(bundles["fronts"]), "--edge", f"{host}:{port}", "-p", policy,
            "-n", "24", "--device", "rpi3/1000", "--out", str(out),
        )  # fmt: skip
    assert loaded == []
    assert doc["frames"] == 24 and doc["fallbacks"] == 0
    assert doc["offloaded"] > 0  # the edge answered the ONNX boundaries
    assert doc["config"]["model"]["bundle"] == str(bundles["fronts"])
    # every frame's answer is the model's (the seeded inputs, as numpy drew them)
    fronts = OnnxBundle(bundles["fronts"], threads=1)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 24
    (first,) = rows[0]["outputs"]
    rng = np.random.default_rng(0)
    x = seeded_arrays([((1, 64), "float32")], rng)  # frame 0's input
    (want,) = fronts.whole(x)
    assert np.allclose(first["values"], want.reshape(-1), atol=1e-4 * float(np.abs(want).max()))


def test_a_device_without_torch_runs_edgent_to_its_exits_live(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    bundle = tmp_path_factory.mktemp("branchy") / "b"
    export_bundle(ExportConfig(ModelSpec("branchy_alexnet"), bundle, parts="fronts"))
    with BackgroundServer(ModelStore(["branchy_alexnet"])) as server:
        host, port = server.address
        doc, loaded, _ = run_without_torch(
            "--bundle", str(bundle), "--edge", f"{host}:{port}", "-p", "edgent-dynamic",
            "-n", "30", "--device", "rpi3", "--latency-req", "100ms",
            "--trace", "norway_bus_1", "--trace-scale", "0.5",
        )  # fmt: skip
    assert loaded == []
    assert doc["frames"] == 30 and doc["fallbacks"] == 0
    assert sum(doc["exits"].values()) == 30  # every frame ran to an exit Edgent chose
    assert doc["offloaded"] > 0  # the edge finished exits' ONNX boundaries
    assert doc["deadline_hit_rate"] is not None


def test_a_bundle_run_refuses_what_it_cannot_do(bundles: dict[str, Path]) -> None:
    for args, named in [
        (("--bundle", str(bundles["fronts"]), "-m", "mlp"), "without --model"),
        (("--bundle", str(bundles["fronts"]), "-p", "stopping"), "torch's segments"),
        (("--bundle", "/nonexistent/b"), "coinfer export"),
    ]:
        done = subprocess.run(
            [sys.executable, "-c", WITHOUT_FULL, *args],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 2, done.stderr
        assert named in done.stderr and "Traceback" not in done.stderr
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_FULL.replace('"run", ', ""), "plan", "mlp"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2 and "coinfer[full]" in done.stderr, done.stderr
