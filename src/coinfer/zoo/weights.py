"""Trained weights from a file: a ``state_dict`` saved by ``torch.save`` (read with
``weights_only=True``: nothing in the file is executed) or a ``.safetensors`` file."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from coinfer.errors import BadFileError


class WeightsError(BadFileError):
    """A weights file that cannot be read, or does not fit the model."""


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A ``state_dict`` from a ``.safetensors`` file or a ``torch.save`` file, read with
    ``weights_only=True`` (nothing in it is executed)."""
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise WeightsError(
                f"--weights {path}: reading .safetensors needs the safetensors "
                f"package (pip install safetensors)"
            ) from None
        try:
            return dict(load_file(str(path)))
        except Exception as exc:
            raise WeightsError(f"--weights {path}: not a safetensors file ({exc})") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"--weights {path}: cannot read a state_dict ({first[:160]}); save one with "
            f"torch.save(model.state_dict(), FILE) — a whole pickled model is not loaded"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a training checkpoint
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(
            f"--weights {path}: not a state_dict (a map of names to tensors); "
            f"save one with torch.save(model.state_dict(), FILE)"
        )
    return state


def load_weights(net: nn.Module, path: Path) -> None:
    """Load ``path`` into ``net`` strictly: every parameter and buffer, of the right shape."""
    state = read_state_dict(path)
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # a shape mismatch
        detail = " ".join(str(exc).split())[:300]
        raise WeightsError(f"--weights {path} does not fit the model: {detail}") from None
    problems = []
    if result.missing_keys:
        problems.append(f"missing {', '.join(result.missing_keys[:5])}")
    if result.unexpected_keys:
        problems.append(f"not in the model: {', '.join(result.unexpected_keys[:5])}")
    if problems:
        raise WeightsError(
            f"--weights {path} does not fit the model ({'; '.join(problems)}): "
            f"was it saved from this factory with these --model-arg?"
        )
