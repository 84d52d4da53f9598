"""What each install brings: the base and the `device` extra hold no torch (a device runs a
bundle with numpy and ONNX Runtime), the `full` extra brings every package the CLI names when
one is missing; and, for real (slow), a fresh venv with ``pip install '.[device]'`` runs
``coinfer run --bundle`` against an edge."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from coinfer.errors import FULL_ONLY

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
IMPORT_NAMES = {"scikit-learn": "sklearn", "scikit-image": "skimage"}  # distribution: module


def _names(requirements: list[str]) -> set[str]:
    found = (re.match(r"[A-Za-z0-9_.-]+", r) for r in requirements)
    return {m.group(0).lower() for m in found if m}


def test_a_device_install_brings_no_torch() -> None:
    device = _names(PROJECT["dependencies"]) | _names(PROJECT["optional-dependencies"]["device"])
    assert "onnxruntime" in device and "numpy" in device and "msgpack" in device
    assert not {IMPORT_NAMES.get(n, n) for n in device} & FULL_ONLY


def test_the_full_extra_brings_what_a_missing_package_message_names() -> None:
    full = {IMPORT_NAMES.get(n, n) for n in _names(PROJECT["optional-dependencies"]["full"])}
    assert full >= FULL_ONLY


@pytest.mark.slow
def test_a_fresh_device_install_runs_a_bundle_against_the_edge(tmp_path: Path) -> None:
    from coinfer.bundle.export import ExportConfig, export_bundle
    from coinfer.edge.process import BackgroundServer
    from coinfer.edge.store import ModelStore
    from coinfer.zoo.spec import ModelSpec

    spec = ModelSpec("mlp", (("depth", 4), ("width", 64)))
    export_bundle(ExportConfig(spec, tmp_path / "bundle", parts="fronts"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"{ROOT}[device]"], check=True, capture_output=True, timeout=900)
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list"], capture_output=True, text=True
    ).stdout.lower()
    assert "onnxruntime" in listed
    assert not any(re.search(rf"^{n}\s", listed, re.M) for n in ("torch", "scikit-learn", "av"))
    with BackgroundServer(ModelStore([spec])) as server:
        host, port = server.address
        args = ["--bundle", str(tmp_path / "bundle"), "--edge", f"{host}:{port}", "-n", "20"]
        done = subprocess.run(
            [str(venv / "bin" / "coinfer"), "run", *args, "--device", "rpi3/1000", "--json"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
    assert done.returncode == 0, done.stderr
    assert '"fallbacks": 0' in done.stdout and '"frames": 20' in done.stdout
