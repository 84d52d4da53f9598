"""Trained weights from a file: a ``state_dict`` saved by ``torch.save`` (read with
``weights_only=True``: nothing in the file is executed) or a ``.safetensors`` file."""

from __future__ import annotations

import pickle
import re
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
        raise WeightsError(
            f"--weights {path}: {_unreadable(path, exc)}; save the weights with "
            f"torch.save(model.state_dict(), FILE) or as a .safetensors file"
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


def _unreadable(path: Path, exc: Exception) -> str:
    """Why torch could not read ``path``, in a user's words (torch's own run to paragraphs)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    if isinstance(exc, pickle.UnpicklingError) and "weights only load failed" in text.lower():
        return (
            "a whole pickled model (torch.save(model)), which is never unpickled here: "
            "unpickling runs code from the file"
        )
    try:
        with path.open("rb") as fh:
            head = fh.read(4)
    except OSError as error:
        return f"cannot read it ({error.strerror or error})"
    if not head:
        return "the file is empty"
    if head.startswith(b"PK") or head[:1] == b"\x80":  # torch.save's zip archive, or a pickle
        return "a damaged or truncated torch.save file (PyTorch cannot read it)"
    return "not a torch.save file (neither its zip archive nor a pickle)"


def _misfits(net: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Each tensor whose shape in the file is not the model's."""
    model = net.state_dict()
    return [
        f"{name} is {list(t.shape)} in the file, {list(model[name].shape)} in the model"
        for name, t in state.items()
        if name in model and tuple(t.shape) != tuple(model[name].shape)
    ]


def load_weights(net: nn.Module, path: Path) -> None:
    """Load ``path`` into ``net`` strictly: every parameter and buffer, of the right shape."""
    state = read_state_dict(path)
    misfits = _misfits(net, state)
    if misfits:
        more = f" (and {len(misfits) - 2} more)" if len(misfits) > 2 else ""
        raise WeightsError(
            f"--weights {path} does not fit the model: {'; '.join(misfits[:2])}{more}: was it "
            f"saved from this factory with these --model-arg?"
        )
    try:
        result = net.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # anything else torch refuses
        detail = " ".join(str(exc).split())
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
