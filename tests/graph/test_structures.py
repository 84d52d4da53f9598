"""DAG structures a real model has: skips, branches, several inputs, tuple and dict outputs,
weights used functionally, and Python values (sizes) that must never be sent."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coinfer import ANS_FEATURES, partition
from tests.conftest import assert_same_output


class TwoInputsDictOut(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.branch_a = nn.Conv2d(4, 4, 1)
        self.branch_b = nn.Conv2d(4, 2, 3, padding=1)
        self.fc = nn.Linear(6 * 4 * 4, 5)
        self.scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, image: Tensor, extra: Tensor) -> dict[str, object]:
        h = F.relu(self.conv(image))
        a = self.branch_a(h) + h  # residual add
        b = torch.sigmoid(self.branch_b(h))
        joined = torch.cat([a, b], dim=1)  # multi-branch concatenation
        logits = self.fc(joined.flatten(1)) * self.scale + extra
        return {"logits": logits, "pair": (a.mean(), b.amax(dim=1))}


class FunctionalWeights(nn.Module):
    offset: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(8, 16))
        self.register_buffer("offset", torch.randn(8))

    def forward(self, x: Tensor) -> Tensor:
        h = F.linear(x, self.weight) + self.offset
        h = torch.relu(h)
        return F.linear(h, self.weight.t()[:8, :8])


class OutOfOrder(nn.Module):
    """Returns its values in another order than it computes them."""

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        first = torch.relu(x)
        second = first.sum(dim=1)
        return {"late": second, "early": first}


def test_outputs_returned_out_of_production_order_travel_in_output_order() -> None:
    x = torch.randn(2, 3)
    part = partition(OutOfOrder(), (x,))
    front, _ = part.split(part.last)
    assert part.structure is not None
    out = part.structure.rebuild(part.outputs_at_last_cut(front(x)))
    assert list(out) == ["late", "early"] and part.structure.names == ["late", "early"]
    assert torch.equal(out["late"], torch.relu(x).sum(dim=1))


class SizeArithmetic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 6 * 6, 3)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.conv(x)
        flat = h.view(h.size(0), -1)  # h.size(0) is an int: never part of a boundary
        return self.fc(flat), h


@pytest.mark.parametrize("granularity", ["layer", "node"])
def test_two_inputs_and_nested_dict_outputs(granularity: str) -> None:
    torch.manual_seed(0)
    model = TwoInputsDictOut().eval()
    inputs = (torch.randn(2, 3, 4, 4), torch.randn(2, 5))
    want = model(*inputs)
    part = partition(model, inputs, granularity=granularity)
    assert part.cuts[0].boundary == ("image", "extra")
    for cut in part.cuts:
        front, back = part.split(cut.index)
        assert_same_output(back(*front(*inputs)), want)
    # The last cut sends exactly the three output tensors.
    assert len(part.cuts[-1].boundary) == 3
    # ... and, in the order they travel, they rebuild the model's output
    front, _ = part.split(part.last)
    flat = part.outputs_at_last_cut(front(*inputs))
    assert part.structure is not None
    assert_same_output(part.structure.rebuild(flat), want)
    assert [tuple(t.shape) for t in flat] == [m.shape for m in part.outputs]
    # The concatenation's inputs travel together at some node cut.
    if granularity == "node":
        assert max(len(c.boundary) for c in part.cuts) >= 3


def test_parameters_and_buffers_are_never_sent() -> None:
    model = FunctionalWeights().eval()
    x = torch.randn(4, 16)
    part = partition(model, x, granularity="node")
    weights = {name for name, _ in model.named_parameters()} | {"offset"}
    for cut in part.cuts:
        assert not set(cut.boundary) & weights
        front, back = part.split(cut.index)
        assert_same_output(back(*front(x)), model(x))
    # Each side owns the weights it uses: `weight` is used at both ends of the model.
    middle = part.cuts[len(part.cuts) // 2]
    assert middle.device_param_bytes > 0 and middle.edge_param_bytes > 0


def test_python_values_are_never_sent() -> None:
    model = SizeArithmetic().eval()
    x = torch.randn(2, 3, 8, 8)
    part = partition(model, x, granularity="node")
    names = [c.name for c in part.cuts]
    assert "size" not in names  # the cut right after h.size(0) would send an int
    for cut in part.cuts:
        front, back = part.split(cut.index)
        assert all(isinstance(t, Tensor) for t in front(x))
        assert_same_output(back(*front(x)), model(x))


def test_cut_numbers_add_up() -> None:
    torch.manual_seed(0)
    model = TwoInputsDictOut().eval()
    inputs = (torch.randn(2, 3, 4, 4), torch.randn(2, 5))
    part = partition(model, inputs, granularity="node")
    total_macs = sum(op.macs for op in part.ops)
    param_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    for cut in part.cuts:
        assert cut.device_macs + cut.edge_macs == total_macs
        assert set(ANS_FEATURES) <= set(cut.features)
        assert cut.features["boundary_bytes"] == cut.boundary_bytes
        assert len(cut.feature_vector()) == 7
    first, last = part.cuts[0], part.cuts[-1]
    assert first.device_macs == 0 and first.device_param_bytes == 0
    assert first.edge_param_bytes == param_bytes
    assert last.edge_macs == 0 and last.edge_param_bytes == 0
    assert last.device_param_bytes == param_bytes
    assert last.feature_vector()[:6] == [0.0] * 6


def test_macs_follow_the_layer_formulas() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, groups=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1, groups=4),
        nn.Flatten(),
        nn.Linear(8 * 4 * 4, 10),
    ).eval()
    part = partition(model, torch.randn(1, 3, 8, 8), granularity="node")
    macs = {op.name: op.macs for op in part.ops}
    assert macs["_0"] == 8 * 8 * 8 * 3 * 9  # out elements * C_in * k*k
    assert macs["_1"] == 8 * 8 * 8  # one per activation element
    assert macs["_2"] == 8 * 4 * 4 * 4  # out elements * kernel area
    assert macs["_3"] == 8 * 4 * 4 * 2 * 9  # grouped: C_in / groups
    assert macs["_4"] == 0
    assert macs["_5"] == 10 * 128
    kinds = [op.kind for op in part.ops]
    assert kinds == ["conv", "act", "pool", "conv", "reshape", "fc"]
    conv = part.ops[0]
    assert conv.attrs["kernel_size"] == (3, 3) and conv.attrs["out_channels"] == 8
    # The ANS features of cut 0 describe the whole model's work on the edge.
    f = part.cuts[0].features
    assert f["edge_conv_layers"] == 2 and f["edge_fc_layers"] == 1
    assert f["edge_act_elements"] == 8 * 8 * 8
