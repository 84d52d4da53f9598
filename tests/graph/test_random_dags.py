"""Property: for random small DAG networks (skips, concatenations, several inputs and outputs),
every cut at both granularities reproduces the network exactly."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from coinfer import partition
from tests.conftest import assert_same_output


@dataclass(frozen=True)
class Step:
    kind: str  # conv | relu | add | cat | pool | scale
    a: int
    b: int = 0
    out_channels: int = 0


@dataclass(frozen=True)
class Spec:
    input_channels: tuple[int, ...]
    steps: tuple[Step, ...]
    outputs: tuple[int, ...]
    output_style: str  # tensor | tuple | dict


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    inputs = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=3)))
    channels = list(inputs)
    steps = []
    for _ in range(draw(st.integers(1, 10))):
        kind = draw(st.sampled_from(["conv", "conv", "relu", "add", "cat", "pool", "scale"]))
        a = draw(st.integers(0, len(channels) - 1))
        if kind == "conv":
            out = draw(st.integers(1, 4))
            steps.append(Step(kind, a, out_channels=out))
            channels.append(out)
        elif kind == "add":
            same = [i for i, c in enumerate(channels) if c == channels[a]]
            steps.append(Step(kind, a, draw(st.sampled_from(same))))
            channels.append(channels[a])
        elif kind == "cat":
            b = draw(st.integers(0, len(channels) - 1))
            steps.append(Step(kind, a, b))
            channels.append(channels[a] + channels[b])
        else:
            steps.append(Step(kind, a))
            channels.append(channels[a])
    outputs = draw(st.lists(st.integers(0, len(channels) - 1), min_size=1, max_size=3, unique=True))
    style = draw(
        st.sampled_from(["tensor", "tuple", "dict"])
        if len(outputs) == 1
        else st.sampled_from(["tuple", "dict"])
    )
    return Spec(inputs, tuple(steps), tuple(outputs), style)


class RandomDag(nn.Module):
    """Interprets a Spec; torch.fx unrolls the Python loop into a flat DAG (torch.fx needs a
    fixed number of forward arguments, hence one subclass per input count)."""

    def __init__(self, spec: Spec) -> None:
        super().__init__()
        self.spec = spec
        channels = list(spec.input_channels)
        convs = {}
        for i, step in enumerate(spec.steps):
            if step.kind == "conv":
                convs[str(i)] = nn.Conv2d(channels[step.a], step.out_channels, 3, padding=1)
                channels.append(step.out_channels)
            elif step.kind == "cat":
                channels.append(channels[step.a] + channels[step.b])
            else:
                channels.append(channels[step.a])
        self.convs = nn.ModuleDict(convs)

    def run(self, inputs: list[Tensor]) -> object:
        values = inputs
        for i, step in enumerate(self.spec.steps):
            x = values[step.a]
            if step.kind == "conv":
                y = self.convs[str(i)](x)
            elif step.kind == "relu":
                y = torch.relu(x)
            elif step.kind == "add":
                y = x + values[step.b]
            elif step.kind == "cat":
                y = torch.cat([x, values[step.b]], dim=1)
            elif step.kind == "pool":
                y = nn.functional.max_pool2d(x, 3, 1, 1)
            else:
                y = x * 0.5
            values.append(y)
        outs = [values[i] for i in self.spec.outputs]
        if self.spec.output_style == "tensor":
            return outs[0]
        if self.spec.output_style == "tuple":
            return tuple(outs)
        return {f"out{i}": o for i, o in enumerate(outs)}


class OneInput(RandomDag):
    def forward(self, x0: Tensor) -> object:
        return self.run([x0])


class TwoInputs(RandomDag):
    def forward(self, x0: Tensor, x1: Tensor) -> object:
        return self.run([x0, x1])


class ThreeInputs(RandomDag):
    def forward(self, x0: Tensor, x1: Tensor, x2: Tensor) -> object:
        return self.run([x0, x1, x2])


BY_INPUTS: dict[int, type[RandomDag]] = {1: OneInput, 2: TwoInputs, 3: ThreeInputs}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), granularity=st.sampled_from(["layer", "node"]))
def test_every_cut_of_a_random_dag_is_exact(spec: Spec, granularity: str) -> None:
    torch.manual_seed(0)
    model = BY_INPUTS[len(spec.input_channels)](spec).eval()
    inputs = tuple(torch.randn(2, c, 5, 5) for c in spec.input_channels)
    with torch.no_grad():
        want = model(*inputs)
        part = partition(model, inputs, granularity=granularity)
        # Cut 0 sends exactly the inputs the network reads, in order.
        read = {s.a for s in spec.steps} | {s.b for s in spec.steps if s.kind in ("add", "cat")}
        read |= set(spec.outputs)
        n_in = len(inputs)
        assert part.cuts[0].boundary == tuple(part.input_names[i] for i in sorted(read) if i < n_in)
        for cut in part.cuts:
            front, back = part.split(cut.index)
            sent = front(*inputs)
            assert len(sent) == len(cut.boundary)
            assert_same_output(back(*sent), want)
        # The last cut sends the outputs and nothing else.
        assert len(part.cuts[-1].boundary) == len(spec.outputs)
