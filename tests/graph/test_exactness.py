"""Every cut of every zoo model, at both granularities, reproduces the whole model bit for bit."""

from __future__ import annotations

import pytest
import torch

from coinfer import partition, zoo
from tests.conftest import assert_same_output

CASES = [(name, g) for name in zoo.names() for g in ("layer", "node")]


@pytest.mark.parametrize(("name", "granularity"), CASES)
def test_every_cut_is_exact(name: str, granularity: str) -> None:
    model = zoo.create(name)
    inputs = zoo.example_inputs(name)
    want = model(*inputs)
    part = partition(model, inputs, granularity=granularity)

    assert part.cuts[0].boundary == part.input_names
    assert part.cuts[0].num_device_ops == 0
    assert part.cuts[-1].num_device_ops == len(part.ops)
    for cut in part.cuts:
        front, back = part.split(cut.index)
        sent = front(*inputs)
        assert isinstance(sent, tuple) and len(sent) == len(cut.boundary)
        assert all(isinstance(t, torch.Tensor) for t in sent)
        assert [tuple(t.shape) for t in sent] == list(cut.boundary_shapes)
        assert sum(t.numel() * t.element_size() for t in sent) == cut.boundary_bytes
        if cut.index == 0:
            assert all(s is x for s, x in zip(sent, inputs, strict=True))
        if cut.index == part.last:
            assert_same_output(sent[0] if len(sent) == 1 else sent, want)
        assert_same_output(back(*sent), want)


def test_vgg16_has_the_23_partition_points_of_ans() -> None:
    part = partition(zoo.create("vgg16"), zoo.example_inputs("vgg16"))
    assert part.num_cuts == 23
    assert [c.name for c in part.cuts[:4]] == ["input", "conv1_1", "conv1_2", "pool1"]
    assert part.cuts[-1].name == "fc8"


def test_node_granularity_refines_layer_granularity() -> None:
    model, inputs = zoo.create("resnet18"), zoo.example_inputs("resnet18")
    layer = partition(model, inputs, granularity="layer")
    node = partition(model, inputs, granularity="node")
    assert {c.boundary for c in layer.cuts} <= {c.boundary for c in node.cuts}
    assert node.num_cuts > layer.num_cuts
    # Inside a residual block the skip tensor travels too.
    assert max(len(c.boundary) for c in node.cuts) == 2
    assert max(len(c.boundary) for c in layer.cuts) == 1


def test_partition_leaves_the_models_mode_alone() -> None:
    model = zoo.create("mobilenet_v2").train()
    partition(model, zoo.example_inputs("mobilenet_v2"))
    assert all(m.training for m in model.modules())
