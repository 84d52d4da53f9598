"""Every command, walked with bad values: each is one line naming the problem, exit 2, never a
traceback — and the values that used to be misread are read as people mean them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coinfer.cli import app

runner = CliRunner()
NO_MODEL_SHAPE = """from torch import nn


def build():
    return nn.Sequential(nn.Linear(4, 3))
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad")
    csv = root / "other_columns.csv"
    csv.write_text("when,rate\n0,1.0\n1,2.0\n")
    fit = root / "fit.json"
    assert runner.invoke(app, ["profile", "--help"]).exit_code == 0
    fit.write_text(json.dumps({"device": "tiny", "models": {}}))
    (root / "noshape.py").write_text(NO_MODEL_SHAPE)
    (root / "junk.pt").write_bytes(b"not a state dict")
    return {
        "root": root,
        "csv": csv,
        "fit": fit,
        "noshape": root / "noshape.py",
        "junk": root / "junk.pt",
    }


CASES = [
    (["run", "-m", "resnet19"], "unknown model 'resnet19'"),
    (["run", "--edge", "127.0.0.1:99999"], "1..65535"),
    (["run", "--edge", "nohost"], "HOST:PORT"),
    (["run", "--codec", "gzip"], "--codec must be one of"),
    (["run", "--quant", "int4"], "--quant must be one of"),
    (["run", "--trace", "/nope.tsv"], "no trace"),
    (["run", "--latency-req", "-1ms"], "--latency-req must be above 0"),
    (["run", "--rtt", "-5ms"], "--rtt must be 0 or more"),
    (["run", "--latency-req", "100"], "--latency-req '100' has no unit: write 100ms or 100s"),
    (["plan", "vgg16", "--rtt", "20"], "--rtt '20' has no unit: write 20ms or 20s"),
    (["run", "--rtt", "20"], "--rtt '20' has no unit"),
    (["run", "-b", "fast"], "cannot read --bandwidth"),
    (["run", "--out", "/proc/nope/r.jsonl"], "--out"),
    (["run", "--format", "xml"], "--format must be one of"),
    (["run", "-m", "mlp", "--images", "/nope"], "images"),
    (["plan", "vgg16", "--edge-load", "-2"], "--edge-load must be a number above 0"),
    (["plan", "vgg16", "--edge-load", "0"], "--edge-load must be a number above 0"),
    (["plan", "vgg16", "--rtt", "-5ms"], "--rtt must be 0 or more"),
    (["plan", "vgg16", "-b", "10XB/s"], "cannot read --bandwidth"),
    (["plan", "vgg16", "--device", "fit:missing.json"], "no fit file"),
    (["plan", "vgg16", "--device", "warp9"], "unknown device class"),
    (["plan", "vgg16", "--input-shape", "1,x"], "is not a shape"),
    (["plan", "vgg16", "--model-arg", "nokey"], "KEY=VALUE"),
    (["plan", "vgg16", "--model-arg", "depth=3"], "does not take these arguments"),
    (["plan", "vgg16", "--weights", "/nope.pt"], "no such file"),
    (["inspect", "vgg17"], "unknown model 'vgg17'"),
    (["inspect", "nomodule_xyz:build"], "cannot import module"),
    (["inspect", "vgg16", "--input-shape", "1,3,224,224:complex"], "dtype 'complex'"),
    (["simulate", "-m", "resnet19"], "unknown model"),
    (["simulate", "--out", "/proc/nope"], "--out"),
    (["simulate", "--channel", "awgn", "-p", "stopping"], "--channel must be"),
    (["simulate", "--latency-req", "0ms"], "--latency-req must be above 0"),
    (["simulate", "-p", "nosuchpolicy"], "nosuchpolicy"),
    (["serve", "-m", "resnet19"], "unknown model"),
    (["serve", "-m", "mlp", "--weights", "/nope.pt"], "no such file"),
    (["serve", "-m", "mlp", "-m", "mlp"], "given twice"),
    (["fleet", "--shared-uplink", "lots"], "cannot read --shared-uplink"),
    (["fleet", "--learner", "big"], "unknown learner"),
    (["fleet", "--world", "moon"], "unknown world 'moon'"),
    (["fleet", "--world", "prototype", "-k", "2"], "drop --types"),
    (["run", "-m", "alexnet", "-p", "fedlinucb-dw", "--learner", "deep"], "--learner must be"),
    (
        ["run", "-m", "alexnet", "-p", "noncoop", "--experience", "/nope.json"],
        "no such experience file",
    ),
    (["serve", "--max-groups", "0"], "--max-groups"),
    (["experiment", "neurosurgeon", "--out", "/proc/nope"], "--out"),
    (["experiment", "nosuch"], "unknown experiment"),
    (["demo", "--model", "foo"], "the demo runs zoo models"),
    (["demo", "--system", "cans2"], "--system must be one of"),
    (["demo", "--out", "/proc/nope"], "--out"),
    (["ping", "127.0.0.1:0"], "1..65535"),
    (["stats", "no-port"], "HOST:PORT"),
    (["profile", "--per-kind", "1"], "--per-kind"),
    (["profile", "--out", "/proc/nope/fit.json"], "--out"),
]


def _one_line_exit_2(args: list[str], expect: str) -> None:
    result = runner.invoke(app, args)
    text = " ".join(result.output.split())
    assert result.exit_code == 2, (args, result.output, result.exception)
    assert "Traceback" not in result.output, result.output
    assert expect in text, (args, result.output)
    error_lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(error_lines) <= 1, result.output


@pytest.mark.parametrize(("args", "expect"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_values_exit_2_with_one_line(args: list[str], expect: str) -> None:
    _one_line_exit_2(args, expect)


def test_bad_files_exit_2_with_one_line(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(files["root"])
    _one_line_exit_2(["simulate", "--trace", str(files["csv"])], "time column")
    _one_line_exit_2(["run", "--trace", str(files["csv"])], "time column")
    _one_line_exit_2(
        ["plan", "vgg16", "--device", f"fit:{files['root'] / 'nofit.json'}/10"], "no fit file"
    )
    _one_line_exit_2(["plan", "noshape:build"], "--input-shape")
    _one_line_exit_2(["simulate", "-m", "noshape:build"], "--input-shape")
    _one_line_exit_2(["run", "-m", "noshape:build"], "--input-shape")
    _one_line_exit_2(["inspect", "noshape:build", "-i", "1,5"], "noshape")  # a wrong shape
    _one_line_exit_2(["inspect", "mlp", "--weights", str(files["junk"])], "state_dict")


def test_values_are_read_as_people_mean_them(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def bandwidth(text: str) -> float:
        result = runner.invoke(app, ["plan", "alexnet", "-b", text, "--json"])
        assert result.exit_code == 0, result.output
        return float(json.loads(result.stdout)["bandwidth_bps"])

    assert bandwidth("10MBps") == bandwidth("10MB/s") == 80e6  # bytes: x8
    assert bandwidth("10M") == bandwidth("10mbit") == bandwidth("10Mbit/s") == 10e6
    assert bandwidth("10mbps") == 10e6
    # fit:FILE/N scales a fitted class like any other
    fit = files["root"] / "host-fit.json"
    from coinfer.latency.regression import LayerModel  # noqa: F401 (the fit format's home)

    fit.write_text(
        json.dumps(
            {
                "device": "fit",
                "models": {
                    kind: {"features": ["macs"], "weights": [1e-9], "intercept": 1e-5}
                    for kind in (
                        "conv",
                        "fc",
                        "pool",
                        "act",
                        "norm",
                        "lrn",
                        "dropout",
                        "elementwise",
                        "reduce",
                        "reshape",
                        "matmul",
                        "other",
                    )
                },
            }
        )
    )
    one = runner.invoke(app, ["plan", "alexnet", "--device", f"fit:{fit}", "--json"])
    ten = runner.invoke(app, ["plan", "alexnet", "--device", f"fit:{fit}/10", "--json"])
    assert one.exit_code == ten.exit_code == 0, (one.output, ten.output)
    d1 = json.loads(one.stdout)["cuts"][-1]["device_s"]
    d10 = json.loads(ten.stdout)["cuts"][-1]["device_s"]
    assert d10 == pytest.approx(10 * d1)


def test_json_is_strict_and_records_its_configuration() -> None:
    def strict(text: str) -> dict:
        def refuse(name: str) -> None:
            raise AssertionError(f"{name} in JSON")

        return json.loads(text, parse_constant=refuse)

    # 3 frames of a still scene: no key frame, whose mean used to print as NaN
    sim = runner.invoke(app, ["simulate", "-m", "alexnet", "-p", "edge-only", "-n", "3", "--json"])
    assert sim.exit_code == 0, sim.output
    doc = strict(sim.stdout)
    assert doc["schema"].startswith("coinfer/") and doc["config"]["frames"] == 3
    assert doc["config"]["model"]["name"] == "alexnet"
    plan = strict(runner.invoke(app, ["plan", "branchy_alexnet", "-p", "edgent", "--json"]).stdout)
    assert all("energy_j" in c for c in plan["cuts"]) and "index" in plan["cuts"][0]
    assert plan["config"]["latency_req_s"] == 0.5
    inspect = strict(runner.invoke(app, ["inspect", "alexnet", "--json"]).stdout)
    assert {"index", "name"} <= set(inspect["cuts"][0]) and len(inspect["fingerprint"]) == 32


def test_tables_never_cut_a_number_when_piped() -> None:
    result = runner.invoke(app, ["plan", "vgg16"], env={"COLUMNS": "60"})
    assert result.exit_code == 0
    assert "…" not in result.stdout
    # plain (not a terminal): one header line with whole column names
    header = next(line for line in result.stdout.splitlines() if "device runs to" in line)
    assert "total ms" in header
    csv = runner.invoke(app, ["plan", "vgg16", "--format", "csv"]).stdout.splitlines()
    assert csv[0].startswith("cut,device runs to,") and len(csv) == 23 + 1
    md = runner.invoke(app, ["policies", "--format", "md"]).stdout
    assert "| policy | decides |" in md


def test_serve_scopes_options_to_one_of_several_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from coinfer.cli.common import model_specs

    monkeypatch.chdir(tmp_path)
    (tmp_path / "imgnet.py").write_text(
        "from torch import nn\n\ndef build(width=8):\n"
        "    return nn.Sequential(nn.Conv2d(3, width, 3), nn.Flatten())\n"
    )
    (tmp_path / "vecnet.py").write_text(
        "from torch import nn\n\ndef build(width=4):\n    return nn.Linear(16, width)\n"
    )
    torch.save({"0.weight": torch.zeros(8, 3, 3, 3), "0.bias": torch.zeros(8)}, tmp_path / "img.pt")
    img, vec = model_specs(
        ["imgnet:build", "vecnet:build"],
        ["imgnet:build@1,3,8,8", "1,16"],
        ["vecnet:build@width=6"],
        ["imgnet:build@img.pt"],
    )
    assert [s.shape for s in img.inputs or ()] == [(1, 3, 8, 8)] and img.kwargs == ()
    assert [s.shape for s in vec.inputs or ()] == [(1, 16)] and vec.kwargs == (("width", 6),)
    assert img.weights == Path("img.pt") and vec.weights is None
    assert float(img.build().state_dict()["0.weight"].abs().sum()) == 0.0  # the file's weights
    assert vec.build()(vec.example_inputs()[0]).shape == (1, 6)


TINY = """from torch import nn


def build(width=8):
    return nn.Sequential(nn.Linear(8, width), nn.ReLU(), nn.Linear(width, 2))


build.example_inputs = [(1, 8)]
"""


def test_weight_files_and_images_that_cannot_be_used_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A misfit names the tensors and --model-arg; a damaged, foreign, pickled-model or empty
    file says which it is in a line (no ANSI escapes, no torch paragraphs); a file that is
    not an image is named."""
    import torch

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "tiny.py").write_text(TINY)
    from torch import nn

    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    torch.save(net.state_dict(), "w8.pt")
    good = (tmp_path / "w8.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "notes.pt").write_text("these are my notes\n" * 20)
    (tmp_path / "empty.pt").write_bytes(b"")
    torch.save(net, "whole.pt")
    inspect = ["inspect", "tiny:build", "--weights"]
    _one_line_exit_2([*inspect, "w8.pt", "--model-arg", "width=4"], "0.weight is [8, 8] in the")
    _one_line_exit_2([*inspect, "w8.pt", "--model-arg", "width=4"], "--model-arg?")
    _one_line_exit_2([*inspect, "cut.pt"], "a damaged or truncated torch.save file")
    _one_line_exit_2([*inspect, "notes.pt"], "not a torch.save file")
    _one_line_exit_2([*inspect, "empty.pt"], "the file is empty")
    _one_line_exit_2([*inspect, "whole.pt"], "a whole pickled model")
    whole = runner.invoke(app, [*inspect, "whole.pt"]).output
    assert "\x1b" not in whole and "state_dict(), FILE) or as a .safetensors file\n" in whole
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "fake.png").write_text("not a png")
    _one_line_exit_2(
        ["run", "-m", "branchy_alexnet", "--images", "photos", "--no-preflight"],
        "cannot read image 'photos/fake.png': not a png image",
    )


def test_a_run_that_fails_first_leaves_no_results_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The preflight fails (nothing listens on port 1): no folder made, no empty file left."""
    monkeypatch.chdir(tmp_path)
    _one_line_exit_2(
        ["run", "-m", "mlp", "--edge", "127.0.0.1:1", "--out", "new/r.jsonl"], "nothing listens"
    )
    assert not (tmp_path / "new").exists()


def test_policies_say_why_not_elsewhere() -> None:
    result = runner.invoke(app, ["policies", "--format", "plain"])
    assert result.exit_code == 0, result.output
    assert "why not elsewhere" in result.stdout
    assert "not live: oracle: the Oracle cannot run live" in result.stdout
    assert " runs in sim, live, not fleet" not in result.stdout
    csv = runner.invoke(app, ["policies", "--format", "csv"]).stdout
    assert "why not" not in csv  # a CSV stays a table
