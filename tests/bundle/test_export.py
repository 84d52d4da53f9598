"""`coinfer export` as a user runs it: a model of their own (residual, dict output) exports every
cut, and each ONNX part, run by ONNX Runtime on an input the exporter never saw, equals the torch
half; weights are written once; what the exporter cannot translate is listed with its reason;
exits carry the fingerprints the edge checks; a bad manifest is one named line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from coinfer.assembly import load_model
from coinfer.bundle.export import ExportConfig, export_bundle
from coinfer.bundle.manifest import MANIFEST, TOLERANCE, read_manifest
from coinfer.bundle.onnx_files import WEIGHTS_FILE
from coinfer.bundle.runtime import OnnxBundle
from coinfer.edge.store import ModelStore
from coinfer.errors import BadFileError
from coinfer.graph.outputs import output_tensors
from coinfer.zoo.spec import ModelSpec
from tests.apps.test_own_model import NEWCOMER_MODEL
from tests.peers import run_cli

# a model with a layer torch.onnx cannot translate (aten.cummax): the parts holding it fail,
# the others export
HALF_EXPORTABLE = """import torch
from torch import nn


class Running(nn.Module):
    def forward(self, x):
        return torch.cummax(x, dim=1).values


def build():
    return nn.Sequential(
        nn.Linear(8, 8), nn.ReLU(), Running(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)
    )


build.example_inputs = [(1, 8)]
"""


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("user")
    (folder / "digitnet.py").write_text(NEWCOMER_MODEL)
    done = run_cli(folder, "export", "digitnet:build", "--out", "bundle", "--json")
    assert done.returncode == 0, done.stderr
    return folder, json.loads(done.stdout)


def _relative(got: np.ndarray, want: torch.Tensor) -> float:
    ref = want.detach().numpy()
    return float(np.max(np.abs(got - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


def test_every_cut_of_a_users_model_exports_and_runs_as_torch_does(newcomer) -> None:
    folder, doc = newcomer
    bundle = folder / "bundle"
    manifest = read_manifest(bundle)
    assert doc["parts"]["failed"] == 0 and doc["failures"] == []
    assert doc["max_rel_error"] <= TOLERANCE
    (path,) = manifest.paths  # one exit
    assert [t.name for t in path.outputs] == ["logits", "features"]
    assert [t.shape for t in manifest.inputs] == [(1, 1, 8, 8)]

    spec = ModelSpec(f"{folder / 'digitnet.py'}:build")
    setup = load_model(spec)
    assert path.fingerprint == setup.part.fingerprint.hex()
    x = torch.randn(1, 1, 8, 8, generator=torch.Generator().manual_seed(7))  # not the example
    for cut in path.cuts:
        assert cut.front.state == ("empty" if cut.index == 0 else "exported")
        assert cut.back.state == ("empty" if cut.index == path.last else "exported")
        front, back = setup.torch_path().split(cut.index)
        with torch.no_grad():
            boundary = list(front(x))
            outputs = output_tensors(back(*boundary))
        if cut.front.file:
            session = ort.InferenceSession(str(bundle / cut.front.file))
            got = session.run(None, {"input:x": x.numpy()})
            assert [o.name for o in session.get_outputs()] == [
                f"boundary:{b.name}" for b in cut.boundary
            ]
            assert all(_relative(g, w) <= TOLERANCE for g, w in zip(got, boundary, strict=True))
        if cut.back.file:
            session = ort.InferenceSession(str(bundle / cut.back.file))
            feeds = {
                f"boundary:{b.name}": t.numpy() for b, t in zip(cut.boundary, boundary, strict=True)
            }
            got = session.run(None, feeds)
            assert [o.name for o in session.get_outputs()] == ["output:logits", "output:features"]
            assert all(_relative(g, w) <= TOLERANCE for g, w in zip(got, outputs, strict=True))
    # the last front's boundary, reordered by the manifest, is the model's output
    last = path.cuts[-1]
    assert last.front.file is not None
    got = ort.InferenceSession(str(bundle / last.front.file)).run(None, {"input:x": x.numpy()})
    with torch.no_grad():
        want = output_tensors(setup.torch_net(x))
    ordered = [got[i] for i in path.outputs_from_last]
    assert all(_relative(g, w) <= TOLERANCE for g, w in zip(ordered, want, strict=True))


def test_weights_are_written_once_however_many_parts_hold_them(tmp_path: Path) -> None:
    spec = ModelSpec("mlp", (("depth", 4), ("width", 128)))
    manifest = export_bundle(ExportConfig(spec, tmp_path / "mlp"))
    sizes = [p.numel() * 4 for p in load_model(spec).torch_net.parameters()]
    params = sum(n for n in sizes if n >= 1024)  # biases of 128 floats stay inline
    weights = (tmp_path / "mlp" / WEIGHTS_FILE).stat().st_size
    parts = sum(1 for p in manifest.paths for c in p.cuts for h in (c.front, c.back) if h.file)
    assert parts == 2 * 4  # 4 fronts and 4 backs of 5 cuts
    assert params <= weights <= params + 4096 * 4 * 2  # once, and at most a page per tensor
    assert sum(f.stat().st_size for f in (tmp_path / "mlp").glob("*.onnx")) < params / 2


def test_parts_that_do_not_export_are_listed_with_the_exporters_reason(tmp_path: Path) -> None:
    (tmp_path / "running.py").write_text(HALF_EXPORTABLE)
    done = run_cli(tmp_path, "export", "running:build", "--out", "b", "--format", "plain")
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(tmp_path / "b")
    (path,) = manifest.paths
    part = load_model(ModelSpec(f"{tmp_path / 'running.py'}:build")).part
    (cummax,) = [op.index for op in part.ops if "cummax" in op.target]
    for cut in path.cuts:  # the fronts that run cummax fail, and the backs that do
        front_fails = cut.num_device_ops >= cummax
        back_fails = cut.num_device_ops < cummax
        assert (cut.front.state == "failed") == (front_fails and cut.index > 0), cut
        assert (cut.back.state == "failed") == (back_fails and cut.index < path.last), cut
        for half in (cut.front, cut.back):
            if half.state == "failed":
                assert half.reason and "cummax" in half.reason and "\x1b" not in half.reason
                assert half.file is None
            else:
                assert half.state == "empty" or (tmp_path / "b" / str(half.file)).is_file()
    assert "cummax" in done.stderr  # each failure on its own line, after the table
    exported = [c for c in path.cuts if c.front.runnable or c.back.runnable]
    assert exported and any(c.back.runnable for c in path.cuts)  # after cummax, backs export


def test_exits_are_exported_with_the_fingerprints_the_edge_checks(tmp_path: Path) -> None:
    manifest = export_bundle(ExportConfig(ModelSpec("branchy_alexnet"), tmp_path / "b", (2,)))
    described: dict = ModelStore(["branchy_alexnet"]).describe()["branchy_alexnet"]
    assert manifest.exits == described["exits"] == [1, 2, 3, 4, 5]
    assert manifest.path(None).fingerprint == described["fingerprint"]
    for e in manifest.exits:
        path = manifest.path(e)
        assert path.fingerprint == described["exit_fingerprints"][str(e)]
        assert path.accuracy is not None and 0.5 < path.accuracy <= 1.0  # the shipped record
        asked = {c.index for c in path.cuts if c.front.state == "exported"}
        assert asked == {2, path.last}, (e, asked)  # the asked cut and the fallback
        assert path.cuts[2].back.runnable
        assert all(c.front.state == "skipped" for c in path.cuts[3:-1])
    assert read_manifest(tmp_path / "b") == manifest
    # every exit's parts take the model's inputs by the model's names, and answer as torch does
    setup = load_model("branchy_alexnet")
    bundle = OnnxBundle(tmp_path / "b", threads=1)
    x = setup.inputs[0]
    for exit_path in setup.exits:
        with torch.no_grad():
            (want,) = output_tensors(setup.torch_path(exit_path.exit).graph_module(x))
        boundary = bundle.front(2, [x.numpy()], exit_path.exit)
        (got,) = bundle.back(2, boundary, exit_path.exit)
        assert np.allclose(got, want.numpy(), rtol=0, atol=1e-4 * float(want.abs().max()))
        (whole,) = bundle.whole([x.numpy()], exit_path.exit)
        assert np.allclose(whole, want.numpy(), rtol=0, atol=1e-4 * float(want.abs().max()))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda d: d["paths"][0]["cuts"][1]["boundary"][0].update(shape=[1, -3]), "boundary"),
        (lambda d: d["paths"][0]["cuts"][1]["front"].update(file="../../etc/passwd"), "front.file"),
        (lambda d: d["paths"][0].update(outputs_from_last=[7]), "outputs_from_last"),
        (lambda d: d.update(schema=99), "schema"),
        (lambda d: d["paths"][0]["cuts"][2].update(index=5), "cuts[2].index"),
        (lambda d: d["paths"][0]["ops"].pop(), "num_device_ops"),
        (lambda d: d["paths"][0]["ops"][0].update(macs="many"), "ops[0].macs"),
    ],
)
def test_a_manifest_that_lies_is_refused_naming_the_field(
    newcomer, tmp_path: Path, change, named: str
) -> None:
    folder, _ = newcomer
    doc = json.loads((folder / "bundle" / MANIFEST).read_text())
    change(doc)
    (tmp_path / MANIFEST).write_text(json.dumps(doc))
    with pytest.raises(BadFileError, match=named.replace("[", r"\[").replace("]", r"\]")):
        read_manifest(tmp_path)


def test_export_refuses_what_it_cannot_do_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "mine.txt").write_text("keep me")
    for args, says in [
        (["mlp", "--out", "notes"], "holds files and no bundle"),
        (["mlp", "--cuts", "3,99", "--out", "x"], "--cuts 99"),
        (["mlp", "--cuts", "three", "--out", "x"], "cut indices like 3,5,8"),
        (["mlp"], "--out DIR"),
    ]:
        done = run_cli(tmp_path, "export", *args)
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (tmp_path / "notes" / "mine.txt").read_text() == "keep me"
