"""A model that takes no images — two int64 token inputs — fed its real inputs from a file
(``run --inputs``): every row runs once, live at every cut the policy tries, and each frame's
outputs in the JSONL equal the whole model's on that row; a file that does not fit the model
is one line and exit 2."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tests.peers import Served, run_cli, strict_run

TOKEN_MODEL = '''"""Two token inputs (words, their kinds) embedded, mixed, pooled to 8."""
import torch
from torch import nn


class TokenNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.words = nn.Embedding(50, 16)
        self.kinds = nn.Embedding(4, 16)
        self.mix = nn.Linear(16, 16)
        self.head = nn.Linear(16, 8)

    def forward(self, tokens, kinds):
        h = self.words(tokens) + self.kinds(kinds)
        return self.head(torch.relu(self.mix(h)).mean(dim=1))


def build():
    return TokenNet()
'''
SHAPES = ("--input-shape", "1,12:int64", "--input-shape", "1,12:int64")
ROWS = 12


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user's folder: tokennet.py and the recorded inputs, one row per frame."""
    root = tmp_path_factory.mktemp("tokens")
    (root / "tokennet.py").write_text(TOKEN_MODEL)
    rng = np.random.default_rng(7)
    tokens = rng.integers(0, 50, size=(ROWS, 12))
    np.savez(root / "tokens.npz", tokens=tokens, kinds=rng.integers(0, 4, size=(ROWS, 12)))
    np.savez(root / "floats.npz", tokens=tokens.astype(np.float64), kinds=tokens)
    np.savez(root / "renamed.npz", words=tokens, kinds=tokens)
    np.savez(root / "short.npz", tokens=tokens, kinds=tokens[:5])
    (root / "broken.npz").write_bytes(b"PK\x03\x04 not a zip")
    return root


def run_on(project: Path, address: tuple[str, int], cut: int) -> list[dict[str, Any]]:
    """``coinfer run --inputs tokens.npz`` always cut at ``cut``: its JSONL rows."""
    out = project / f"cut{cut}.jsonl"
    edge = f"{address[0]}:{address[1]}"
    summary = strict_run(
        project,
        out,
        "-m",
        "tokennet:build",
        *SHAPES,
        "--edge",
        edge,
        "-p",
        f"fixed-{cut}",
        "--inputs",
        "tokens.npz",  # no --frames: each row once
    )
    assert summary["frames"] == summary["offloaded"] == ROWS
    assert summary["config"]["inputs"] == "inputs:tokens.npz"
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_a_token_model_runs_live_on_its_recorded_inputs(project: Path) -> None:
    server = Served(["-m", "tokennet:build", *SHAPES], cwd=str(project)).start().wait_ready()
    try:  # cut 0: the int64 tokens cross the link; cut 4: the mixed features do
        runs = {cut: run_on(project, server.address, cut) for cut in (0, 4)}
    finally:
        server.stop()
    from coinfer import zoo

    net = zoo.create(str(project / "tokennet.py") + ":build")  # the seeded weights both sides use
    held = np.load(project / "tokens.npz")
    for cut, rows in runs.items():
        assert [r["source"] for r in rows] == [f"tokens.npz#{i}" for i in range(ROWS)]
        assert {r["cut"] for r in rows} == {cut}
        for i, row in enumerate(rows):
            tokens, kinds = (torch.from_numpy(held[n][i : i + 1]) for n in ("tokens", "kinds"))
            with torch.no_grad():
                want = net(tokens, kinds).reshape(-1)
            (features,) = row["outputs"]
            assert features["shape"] == [1, 8] and features["dtype"] == "float32"
            assert torch.allclose(torch.tensor(features["values"]), want, atol=1e-6), row


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("floats.npz", "'tokens' is float64, the model takes int64"),
        ("renamed.npz", "holds kinds, words, the model takes tokens, kinds"),
        ("short.npz", "as many frames"),
        ("broken.npz", "not a readable .npz file"),
        ("missing.npz", "no such file"),
    ],
)
def test_a_file_that_does_not_fit_is_one_line(project: Path, name: str, said: str) -> None:
    run = run_cli(
        project, "run", "-m", "tokennet:build", *SHAPES, "--inputs", name, "--no-preflight"
    )
    assert run.returncode == 2, run.stderr
    assert said in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_ctrl_c_says_how_far_it_got_and_keeps_every_line(project: Path) -> None:
    server = Served(["-m", "tokennet:build", *SHAPES], cwd=str(project)).start().wait_ready()
    out = project / "interrupted.jsonl"
    command = [sys.executable, "-m", "coinfer.cli", "run", "-m", "tokennet:build", *SHAPES]
    command += ["--edge", f"{server.address[0]}:{server.address[1]}", "-p", "fixed-0"]
    command += ["--inputs", "tokens.npz", "-n", "1000000", "--out", str(out)]
    try:
        run = subprocess.Popen(command, cwd=project, stderr=subprocess.PIPE, text=True)
        while run.poll() is None and (not out.exists() or len(out.read_bytes().splitlines()) < 5):
            time.sleep(0.1)  # until some frames are written, however slow the host
        run.send_signal(signal.SIGINT)
        _, stderr = run.communicate(timeout=120)
    finally:
        server.stop()
    assert run.returncode == 130, stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]  # every line whole
    said = re.search(r"interrupted after (\d+) of 1000000 frames; .* holds them", stderr)
    assert said is not None and int(said.group(1)) == len(rows) >= 5, stderr
    assert "Traceback" not in stderr
