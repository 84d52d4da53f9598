"""The command line, run in-process through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from coinfer.cli import app

runner = CliRunner()


def test_inspect_json_gives_every_cut() -> None:
    result = runner.invoke(app, ["inspect", "vgg16", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["model"] == "vgg16"
    cuts = doc["cuts"]
    assert len(cuts) == 23
    for key in ("index", "name", "boundary", "boundary_bytes", "device_macs", "edge_macs"):
        assert key in cuts[0]
    assert cuts[0]["boundary_bytes"] == 3 * 224 * 224 * 4
    assert cuts[0]["features"]["edge_conv_layers"] == 13
    assert cuts[-1]["edge_macs"] == 0


def test_inspect_table_node_granularity_and_input_shape() -> None:
    result = runner.invoke(
        app,
        ["inspect", "mlp", "--granularity", "node", "--input-shape", "4,1024"],
        env={"COLUMNS": "160"},
    )
    assert result.exit_code == 0, result.output
    assert "boundary" in result.stdout and "MFLOPs" in result.stdout
    assert "fc8" in result.stdout
    doc = json.loads(
        runner.invoke(app, ["inspect", "mlp", "-g", "node", "-i", "4,1024", "--json"]).stdout
    )
    assert doc["input_shapes"] == [[4, 1024]]
    assert doc["cuts"][0]["boundary_bytes"] == 4 * 1024 * 4


def test_models_lists_the_zoo() -> None:
    doc = json.loads(runner.invoke(app, ["models", "--json"]).stdout)
    assert "tiny_yolov2" in {m["name"] for m in doc["models"]}
    assert "branchy_alexnet" in runner.invoke(app, ["models"]).stdout


def test_errors_are_clear_and_exit_2() -> None:
    unknown = runner.invoke(app, ["inspect", "vgg17"])
    assert unknown.exit_code == 2 and "unknown model 'vgg17'" in unknown.output
    shape = runner.invoke(app, ["inspect", "mlp", "--input-shape", "1,512"])
    assert shape.exit_code == 2 and "shapes and dtypes the model expects" in shape.output
    bad = runner.invoke(app, ["inspect", "mlp", "--input-shape", "one,two"])
    assert bad.exit_code == 2 and "1,3,224,224" in bad.output
    gran = runner.invoke(app, ["inspect", "mlp", "--granularity", "block"])
    assert gran.exit_code == 2 and "layer, node" in gran.output


def test_plan_json_neurosurgeon() -> None:
    fast = runner.invoke(app, ["plan", "branchy_alexnet", "--bandwidth", "10mbps", "--json"])
    assert fast.exit_code == 0, fast.output
    doc = json.loads(fast.stdout)
    for key in ("cut", "num_cuts", "exit", "predicted_s", "accuracy", "breakdown"):
        assert key in doc
    assert doc["cut"] == 0 and doc["num_cuts"] == 24
    slow = json.loads(
        runner.invoke(app, ["plan", "branchy_alexnet", "-b", "20kbps", "--json"]).stdout
    )
    assert slow["cut"] == slow["num_cuts"] - 1
    assert slow["predicted_s"] == pytest.approx(slow["breakdown"]["total_s"])


def test_plan_table_and_errors() -> None:
    table = runner.invoke(
        app, ["plan", "mlp", "--device", "host/10", "--edge-class", "host", "--objective", "energy"]
    )
    assert table.exit_code == 0, table.output
    assert "chosen: cut" in table.stdout
    bad = runner.invoke(app, ["plan", "mlp", "--bandwidth", "fast"])
    assert bad.exit_code == 2 and "5mbps" in bad.output
    bad_dev = runner.invoke(app, ["plan", "mlp", "--device", "pi5"])
    assert bad_dev.exit_code == 2 and "rpi3" in bad_dev.output


def test_plan_edgent_exit_and_cut() -> None:
    def plan(req: str, bw: str) -> dict[str, object]:
        args = ["plan", "branchy_alexnet", "--policy", "edgent", "--latency-req", req]
        result = runner.invoke(app, [*args, "--bandwidth", bw, "--json"])
        assert result.exit_code == 0, result.output
        doc = json.loads(result.stdout)
        assert isinstance(doc, dict)
        return doc

    tight, loose = plan("100ms", "250kbps"), plan("2s", "250kbps")
    assert tight["exit"] is not None and loose["exit"] == 5
    assert isinstance(tight["accuracy"], float) and isinstance(loose["accuracy"], float)
    assert tight["accuracy"] <= loose["accuracy"]
    assert tight["meets_requirement"] is True
    assert isinstance(tight["predicted_s"], float) and tight["predicted_s"] <= 0.1
    wrong = runner.invoke(app, ["plan", "vgg16", "--policy", "edgent"])
    assert wrong.exit_code == 2 and "multi-exit" in wrong.output


def test_simulate_json_every_policy(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "simulate",
            "--model",
            "vgg16",
            "--scenario",
            "network-change",
            "--frames",
            "300",
            "--policy",
            "all",
            "--json",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    names = {"oracle", "device-only", "edge-only", "neurosurgeon", "linucb", "mulinucb"}
    assert names <= set(doc["policies"])
    for stats in doc["policies"].values():
        assert {"mean_delay_s", "key_mean_delay_s", "regret_s", "oracle_match"} <= set(stats)
    assert doc["policies"]["oracle"]["regret_s"] == 0
    assert doc["policies"]["edge-only"]["regret_s"] > 0  # the link drops at frame 100
    assert (tmp_path / "table.json").exists() and (tmp_path / "vgg16_network-change.png").exists()


def test_simulate_table_fixed_cut_trace_and_errors(tmp_path: Path) -> None:
    trace = tmp_path / "link.csv"
    trace.write_text("time_s,mbps\n0,8\n30,0.4\n60,8\n")
    result = runner.invoke(
        app, ["simulate", "-p", "fixed-3,mulinucb", "--trace", str(trace), "-n", "120"]
    )
    assert result.exit_code == 0, result.output
    assert "fixed-3" in result.stdout and "trace" in result.stdout
    for args, message in [
        (["-s", "busy"], "unknown scenario"),
        (["-p", "ucb"], "unknown policy"),
        (["-p", "fixed-99"], "cuts are 0..22"),
        (["--trace", "nope.tsv"], "no trace"),
        (["--discount", "0"], "--discount"),
        (["--device", "pi9"], "unknown device class"),
    ]:
        bad = runner.invoke(app, ["simulate", "-n", "50", *args])
        assert bad.exit_code == 2, (args, bad.output)
        assert message in bad.output, (args, bad.output)


def test_simulate_key_frames_from_a_video_file(tmp_path: Path) -> None:
    from coinfer.video import SyntheticScene, write_video

    scene = SyntheticScene(seed=2, mean_shot_frames=20)
    video = tmp_path / "clip.mp4"
    write_video(video, scene.frames(60))
    result = runner.invoke(
        app, ["simulate", "-p", "mulinucb", "-n", "90", "--video", str(video), "--json"]
    )
    assert result.exit_code == 0, result.output
    rate = json.loads(result.stdout)["key_frame_rate"]
    assert rate == pytest.approx(len(scene.cuts) / 60)  # measured on the file's 60 frames
    missing = runner.invoke(app, ["simulate", "-n", "20", "--video", str(tmp_path / "no.mp4")])
    assert missing.exit_code == 2 and "no video file" in missing.output


def test_fleet_json_and_table(tmp_path: Path) -> None:
    result = runner.invoke(
        app,
        [
            "fleet",
            "-M",
            "2",
            "-n",
            "40",
            "-p",
            "all",
            "--json",
            "--experience",
            str(tmp_path / "exp"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [r["policy"] for r in rows][:4] == ["oracle", "device-only", "edge-only", "noncoop"]
    for row in rows:
        assert {"policy", "devices", "mean_latency_s", "messages", "vs_noncoop"} <= row.keys()
        assert row["devices"] == 2
    assert len(list((tmp_path / "exp").glob("device-*.json"))) == 2  # made once, then reused
    table = runner.invoke(
        app,
        [
            "fleet",
            "-M",
            "3",
            "-k",
            "2",
            "-n",
            "20",
            "--learner",
            "paper",
            "--shared-uplink",
            "5mbps",
            "--experience",
            str(tmp_path / "exp3"),
        ],
    )
    assert table.exit_code == 0, table.output
    assert "fedlinucb-dw" in table.stdout and "3 devices, 2 type(s)" in table.stdout


def test_fleet_errors_exit_2(tmp_path: Path) -> None:
    cases = [
        (["-p", "nope"], "unknown policy 'nope'"),
        (["-k", "9"], "--types is at most 4"),
        (["--learner", "deep"], "unknown learner 'deep'"),
        (["--warm-weight", "2", "-p", "fedlinucb-dw"], "in (0, 1]"),
        (["--shared-uplink", "fast"], "fast"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["fleet", "-n", "5", "--experience", str(tmp_path), *args])
        assert result.exit_code == 2, (args, result.output)
        assert message in result.output, (args, result.output)
