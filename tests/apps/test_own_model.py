"""A newcomer's own model, end to end from the command line as the README tells it: a residual
CNN with a dict output, unknown to the zoo, trained on the digits and saved as a state_dict,
goes inspect → plan → simulate → serve + run; the live answers equal the whole model's on the
same images, and other weights on the device are a named error."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from coinfer.device.inputs import image_tensor, read_image
from tests.conftest import assert_top_k
from tests.peers import Served, run_cli, strict_run

NEWCOMER_MODEL = '''"""A small residual CNN for 8x8 digits, returning a dict."""
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(y)))


class DigitNet(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.stem = nn.Conv2d(1, width, 3, padding=1)
        self.block1 = Block(width)
        self.pool = nn.MaxPool2d(2)
        self.block2 = Block(width)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        x = self.pool(self.block1(torch.relu(self.stem(x))))
        features = self.block2(x)
        return {"logits": self.head(features.mean(dim=(2, 3))), "features": features}


def build(width=16):
    return DigitNet(width)


build.example_inputs = [(1, 1, 8, 8)]
'''


def _train(module: Any, seed: int, steps: int) -> torch.nn.Module:
    from sklearn.datasets import load_digits

    torch.manual_seed(seed)
    net = module.build(width=12)
    digits = load_digits()
    x = torch.tensor(digits.images[:600], dtype=torch.float32)[:, None] / 16.0
    y = torch.tensor(digits.target[:600])
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x)["logits"], y).backward()
        opt.step()
    return net.eval()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder: digitnet.py, its trained weights, other weights, and eight images."""
    from skimage import io
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("newcomer")
    (root / "digitnet.py").write_text(NEWCOMER_MODEL)
    spec = importlib.util.spec_from_file_location("digitnet_for_training", root / "digitnet.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.save(_train(module, 0, 40).state_dict(), root / "digitnet.pt")
    torch.save(_train(module, 1, 5).state_dict(), root / "other.pt")
    images = root / "images"
    images.mkdir()
    digits = load_digits()
    for i in range(8):
        io.imsave(
            images / f"digit{i}.png",
            (digits.images[600 + i] * 16).astype(np.uint8),
            check_contrast=False,
        )
    return root


def test_analysis_commands_take_the_model_args_and_weights(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from coinfer.cli import app

    monkeypatch.chdir(project)  # in the user's folder: digitnet:build imports from there
    runner = CliRunner()

    def cli(*args: str) -> Any:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result

    common = ["digitnet:build", "--model-arg", "width=12", "--weights", "digitnet.pt"]
    inspect = cli("inspect", *common, "--json")
    doc = json.loads(inspect.stdout)
    assert doc["input_shapes"] == [[1, 1, 8, 8]] and len(doc["cuts"]) == 8
    assert doc["config"]["args"] == {"width": 12}
    plan = cli("plan", *common, "-b", "2mbps", "--json")
    assert json.loads(plan.stdout)["num_cuts"] == 8
    simulate = cli(
        "simulate", "-m", *common, "-p", "neurosurgeon,mulinucb-link", "-n", "40", "--json"
    )
    assert set(json.loads(simulate.stdout)["policies"]) == {
        "oracle",
        "neurosurgeon",
        "mulinucb-link",
    }
    shaped = cli("inspect", *common, "--input-shape", "2,1,8,8", "--json")
    assert json.loads(shaped.stdout)["input_shapes"] == [[2, 1, 8, 8]]


def _whole_model(project: Path) -> torch.nn.Module:
    from coinfer import zoo

    return zoo.create(
        str(project / "digitnet.py") + ":build", width=12, weights=project / "digitnet.pt"
    )


def test_serve_and_run_give_the_whole_models_answers(project: Path) -> None:
    server = (
        Served(
            ["-m", "digitnet:build", "--model-arg", "width=12", "--weights", "digitnet.pt"],
            cwd=str(project),
        )
        .start()
        .wait_ready()
    )
    edge = f"{server.address[0]}:{server.address[1]}"
    device = ["-m", "digitnet:build", "--model-arg", "width=12", "--edge", edge]
    try:
        for policy in ("mulinucb-link", "fixed-4"):
            out = project / f"{policy}.jsonl"
            summary = strict_run(
                project,
                out,
                *device,
                "--weights",
                "digitnet.pt",
                "-p",
                policy,
                "--images",
                "images",
                "-n",
                "16",
            )
            assert summary["frames"] == 16
            _check_answers(project, out, offloaded=policy == "fixed-4")
        # a video file: every frame decoded, resized to 8x8, made grey, answered as a whole
        from coinfer.video.files import video_frames, write_video

        clip = project / "clip.mp4"
        write_video(
            clip, iter([np.kron(img, np.ones((8, 8, 1), np.uint8)) for img in _digit_frames()])
        )
        out = project / "video.jsonl"
        run = run_cli(
            project,
            "run",
            *device,
            "--weights",
            "digitnet.pt",
            "-p",
            "fixed-2",
            "--video",
            str(clip),
            "-n",
            "6",
            "--out",
            str(out),
            "--strict",
        )
        assert run.returncode == 0, run.stderr
        decoded = list(video_frames(clip))
        net = _whole_model(project)
        for row in (json.loads(line) for line in out.read_text().splitlines()):
            index = int(row["source"].split("#")[1])
            x = image_tensor(decoded[index], torch.zeros(1, 1, 8, 8))
            with torch.no_grad():
                want = net(x)["logits"].reshape(-1)
            got = next(o for o in row["outputs"] if o["name"] == "logits")["values"]
            assert np.allclose(got, want.numpy(), atol=1e-5)
        # other weights on the device: the preflight names it, exit 2
        wrong = run_cli(project, "run", *device, "--weights", "other.pt", "-n", "3")
        assert wrong.returncode == 2
        assert "is not this device's" in wrong.stderr and "--weights" in wrong.stderr
        # without the preflight every frame is refused by name and finished on the device;
        # --strict makes the fallbacks an exit code
        blind = run_cli(
            project,
            "run",
            *device,
            "--weights",
            "other.pt",
            "-n",
            "3",
            "-p",
            "edge-only",
            "--no-preflight",
            "--strict",
            "--json",
        )
        assert blind.returncode == 3, blind.stderr
        doc = json.loads(blind.stdout)
        assert doc["fallbacks"] == 3 and any("WRONG_MODEL" in e for e in doc["errors"])
    finally:
        server.stop()


def _digit_frames() -> list[np.ndarray]:
    from sklearn.datasets import load_digits

    images = load_digits().images[:6] * 16
    return [np.repeat(i.clip(0, 255).astype(np.uint8)[:, :, None], 3, axis=2) for i in images]


def _check_answers(project: Path, out: Path, offloaded: bool) -> None:
    net = _whole_model(project)
    example = torch.zeros(1, 1, 8, 8)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 16
    if offloaded:
        assert all(r["offloaded"] for r in rows)
    for row in rows:
        x = image_tensor(read_image(project / "images" / row["source"]), example)
        with torch.no_grad():
            want = net(x)
        assert_top_k(next(o for o in row["outputs"] if o["name"] == "logits"), want["logits"])
        features = next(o for o in row["outputs"] if o["name"] == "features")
        assert features["shape"] == list(want["features"].shape)
        assert len(features["values"]) == want["features"].numel()  # 64 values: written whole
        assert torch.allclose(
            torch.tensor(features["values"]), want["features"].reshape(-1), rtol=1e-5, atol=1e-6
        )
