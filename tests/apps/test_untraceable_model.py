"""A model torch.fx cannot trace (a data-dependent branch in one submodule) from the command
line: every command names ``--leaf`` as the remedy, and with ``--leaf`` it goes plan → simulate →
serve + run, the live answers (the gate run on the edge, both of its branches taken) equal to
the whole model's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from coinfer.device.inputs import image_tensor, read_image
from tests.conftest import assert_top_k
from tests.peers import Served, run_cli, strict_run

GATED_MODEL = '''"""A small CNN whose gate branches on its input's values."""
import torch
from torch import nn


class Gate(nn.Module):
    def forward(self, x):
        if x.mean() > 0.5:  # data-dependent: torch.fx cannot follow it
            return x * 2.0
        return x * 0.5


class GatedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1)
        self.gate = Gate()
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.stem(self.gate(x))), 1))


def build():
    return GatedNet()


build.example_inputs = [(1, 1, 8, 8)]
'''


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder: gated.py and eight digit images, half of them inverted (so that the
    gate takes both branches)."""
    from skimage import io
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("gated")
    (root / "gated.py").write_text(GATED_MODEL)
    images = root / "images"
    images.mkdir()
    for i, digit in enumerate(load_digits().images[:8]):
        pixels = (digit * 16).clip(0, 255).astype(np.uint8)
        io.imsave(images / f"d{i}.png", 255 - pixels if i % 2 else pixels, check_contrast=False)
    return root


def test_without_leaf_every_command_names_the_remedy(project: Path) -> None:
    for command in (["plan", "gated:build"], ["simulate", "-m", "gated:build", "-n", "5"]):
        result = run_cli(project, *command)
        assert result.returncode == 2, result.stderr
        assert "--leaf Gate" in result.stderr and "Traceback" not in result.stderr
    typo = run_cli(project, "plan", "gated:build", "--leaf", "Gaet")
    assert typo.returncode == 2 and "'Gaet'" in typo.stderr and "neither a submodule" in typo.stderr


def test_with_leaf_it_plans_simulates_serves_and_runs(project: Path) -> None:
    plan = run_cli(project, "plan", "gated:build", "--leaf", "Gate", "--json")
    assert plan.returncode == 0, plan.stderr
    cuts = json.loads(plan.stdout)["num_cuts"]
    simulate = run_cli(
        project,
        "simulate",
        "-m",
        "gated:build",
        "--leaf",
        "gate",
        "-p",
        "neurosurgeon",
        "-n",
        "10",
        "--json",
    )
    assert simulate.returncode == 0, simulate.stderr
    inspect = run_cli(project, "inspect", "gated:build", "--leaf", "Gate", "--json")
    doc = json.loads(inspect.stdout)
    assert len(doc["cuts"]) == cuts and "gate" in [c["name"] for c in doc["cuts"]]
    assert doc["config"]["leaf"] == ["Gate"]

    server = Served(["-m", "gated:build", "--leaf", "Gate"], cwd=str(project)).start().wait_ready()
    try:
        out = project / "live.jsonl"
        edge = f"{server.address[0]}:{server.address[1]}"
        summary = strict_run(
            project,
            out,
            "-m",
            "gated:build",
            "--leaf",
            "Gate",
            "--edge",
            edge,
            "-p",
            "fixed-0",
            "--images",
            "images",  # no --frames: one pass over the folder's eight images
        )
        assert summary["frames"] == 8
    finally:
        server.stop()
    from coinfer import zoo

    net = zoo.create(str(project / "gated.py") + ":build")  # the seeded weights both sides use
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 8 and all(r["offloaded"] for r in rows)
    branches = set()
    for row in rows:
        x = image_tensor(read_image(project / "images" / row["source"]), torch.zeros(1, 1, 8, 8))
        with torch.no_grad():
            want = net(x)
        branches.add(bool(x.mean() > 0.5))
        (logits,) = row["outputs"]
        assert_top_k(logits, want)
    assert branches == {True, False}  # the gate took both of its branches, on the edge
