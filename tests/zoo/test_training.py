"""The early-exit model trained for real on shipped data, and BranchyNet's entropy exits."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from coinfer import zoo
from coinfer.zoo import BranchyAlexNet
from coinfer.zoo.training import (
    TrainConfig,
    corrupt,
    digits,
    exit_accuracies,
    load_trained,
    train_branchy,
)


@pytest.fixture(scope="module")
def trained() -> tuple[BranchyAlexNet, dict[str, object]]:
    return load_trained()


def held_out() -> tuple[torch.Tensor, torch.Tensor]:
    cfg = TrainConfig()
    _, _, x_test, y_test = digits(cfg.test_fraction, cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    return corrupt(x_test, cfg.noise, cfg.shift, gen), y_test


def test_shipped_weights_reproduce_their_recorded_accuracy(
    trained: tuple[BranchyAlexNet, dict[str, object]],
) -> None:
    model, record = trained
    x, y = held_out()
    measured = exit_accuracies(model, x, y)
    assert measured == pytest.approx(record["exit_accuracy"], abs=1e-6)
    assert len(measured) == 5 and min(measured) > 0.8
    assert measured[-1] > measured[0] + 0.05  # depth buys accuracy: a real trade-off
    assert isinstance(zoo.create("branchy_alexnet", pretrained=True), BranchyAlexNet)


def test_entropy_exits(trained: tuple[BranchyAlexNet, dict[str, object]]) -> None:
    model, _ = trained
    x = held_out()[0][:64]
    with torch.inference_mode():
        logits, exits = model.forward_entropy(x, [0.0] * 4)  # nobody is sure enough
        assert torch.all(exits == 5) and torch.equal(logits, model(x))
        logits, exits = model.forward_entropy(x, [float("inf")] * 4)  # everybody leaves at 1
        assert torch.all(exits == 1) and torch.equal(logits, model.forward_to(x, 1))

        seen: list[int] = []
        handle = model.stages[4].register_forward_hook(lambda m, a, o: seen.append(len(a[0])))
        logits, exits = model.forward_entropy(x, [0.5, 0.5, 0.5, 0.5])
        handle.remove()
    assert 0 < int((exits == 1).sum()) < 64
    assert seen == [int((exits == 5).sum())] or (seen == [] and not torch.any(exits == 5))
    for e in range(1, 6):  # every sample got the logits of the exit it left at
        rows = exits == e
        if rows.any():
            assert torch.allclose(logits[rows], model.forward_to(x[rows], e), atol=1e-5)
    with pytest.raises(ValueError, match="4 entropy thresholds"):
        model.forward_entropy(x, [0.5])


def test_training_learns_from_real_data() -> None:
    model, record = train_branchy(TrainConfig(epochs=2, noise=0.0, shift=0))
    accuracies = record["exit_accuracy"]
    assert isinstance(accuracies, list)
    assert all(a > 0.5 for a in accuracies)  # chance is 0.1
    assert isinstance(model, nn.Module) and not model.training
