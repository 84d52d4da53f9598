"""A bundle's fronts in ONNX Runtime: the same boundary and outputs as torch, no torch imported
to run them, and `coinfer plan --bundle` timing the device's fronts there."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from coinfer.assembly import load_model
from coinfer.bundle.export import ExportConfig, export_bundle
from coinfer.bundle.manifest import TOLERANCE, read_manifest
from coinfer.bundle.runtime import OnnxBundle, check_same_model, front_op_seconds
from coinfer.errors import BadValueError
from coinfer.graph.outputs import output_tensors
from coinfer.zoo.spec import ModelSpec
from tests.peers import run_cli

MLP = ModelSpec("mlp", (("depth", 4), ("width", 64)))
MLP_ARGS = ["--model-arg", "depth=4", "--model-arg", "width=64"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bundles") / "mlp"
    manifest = export_bundle(ExportConfig(MLP, out, (2,), parts="fronts"))
    cuts = manifest.path(None).cuts  # cut 2, and the last (the fallback); no backs
    assert [c.front.state for c in cuts] == ["empty", "skipped", "exported", "skipped", "exported"]
    assert [c.back.state for c in cuts] == ["skipped"] * 4 + ["empty"]
    assert cuts[2].back.reason == "--parts without backs"
    return out


def _close(got: np.ndarray, want: torch.Tensor) -> bool:
    ref = want.numpy()
    return float(np.max(np.abs(got - ref))) <= TOLERANCE * float(np.max(np.abs(ref)))


def test_fronts_and_the_fallback_compute_what_torch_does(bundle: Path) -> None:
    setup = load_model(MLP)
    fronts = OnnxBundle(bundle, threads=1)
    check_same_model(fronts, setup.part.fingerprint, "mlp")
    x = torch.randn(1, 64, generator=torch.Generator().manual_seed(3))
    for k in (0, 2, setup.part.last):
        front, _ = setup.torch_path().split(k)
        with torch.no_grad():
            want = list(front(x))
        got = fronts.front(k, [x.numpy()])
        assert len(got) == len(want) and all(_close(g, w) for g, w in zip(got, want, strict=True))
    with torch.no_grad():
        outputs = output_tensors(setup.torch_net(x))
    assert all(_close(g, w) for g, w in zip(fronts.whole([x.numpy()]), outputs, strict=True))
    assert not fronts.runnable(1) and fronts.runnable(0) and fronts.runnable(2)
    with pytest.raises(BadValueError, match=r"cut 1 of the mlp bundle has no front"):
        fronts.front(1, [x.numpy()])
    with pytest.raises(BadValueError, match="is not mlp"):
        check_same_model(fronts, load_model("mlp").part.fingerprint, "mlp")  # other width


def test_a_bundle_runs_with_no_torch_module_imported(bundle: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        from coinfer.bundle.runtime import OnnxBundle, example_inputs, time_fronts
        fronts = OnnxBundle({str(bundle)!r})
        x = example_inputs(fronts.manifest.inputs)
        out = fronts.whole(x)
        assert out[0].shape == (1, 64), out[0].shape
        assert time_fronts(fronts, repeats=2)[2] > 0
        loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
        assert not loaded, loaded
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_front_times_become_per_op_seconds_whose_prefixes_are_the_fronts(bundle: Path) -> None:
    path = read_manifest(bundle).path(None)
    assert path.last == 4
    times = [0.0, 0.003, 0.002, None, 0.010]  # cut 2 shorter than cut 1: noise, made monotone
    seconds = front_op_seconds(path, times)
    names = [str(op["name"]) for op in path.ops]
    prefix = np.cumsum([seconds[n] for n in names])
    at = {c.index: prefix[c.num_device_ops - 1] if c.num_device_ops else 0.0 for c in path.cuts}
    assert at[1] == pytest.approx(0.003) and at[2] == pytest.approx(0.003)
    assert at[4] == pytest.approx(0.010)
    assert at[2] < at[3] < at[4]  # cut 3 (no front): between its neighbours, by its MACs
    assert min(seconds.values()) >= 0.0
    with pytest.raises(BadValueError, match="whole-model front"):
        front_op_seconds(path, [*times[:-1], None])


def test_plan_times_the_devices_fronts_in_onnx_runtime(bundle: Path, tmp_path: Path) -> None:
    args = ["plan", "mlp", *MLP_ARGS, "--device", "host", "--edge-class", "host", "--json"]
    done = run_cli(tmp_path, *args, "--bundle", str(bundle))
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["config"]["bundle"] == str(bundle)
    device = [c["device_s"] for c in doc["cuts"]]
    assert device[0] == 0.0 and all(b >= a for a, b in itertools.pairwise(device))
    assert device[-1] > 0.0
    for bad, says in [
        (["--device", "rpi3"], "goes with --device host"),
        (["--model-arg", "width=32"], "is not mlp"),
    ]:
        wrong = [*args, *bad, "--bundle", str(bundle)]
        done = run_cli(tmp_path, *wrong)
        assert done.returncode == 2 and says in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
