"""Bad input gets an error that names the problem and the fix."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from coinfer import CutIndexError, PartitionError, partition
from tests.conftest import assert_same_output


class DataDependent(nn.Module):
    """Control flow on a tensor's value: torch.fx cannot trace it."""

    def forward(self, x: Tensor) -> Tensor:
        if x.sum() > 0:
            return x * 2
        return -x


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.gate = DataDependent()
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.gate(self.stem(x)))


def test_untraceable_module_is_named_with_the_remedy() -> None:
    with pytest.raises(PartitionError) as info:
        partition(Net().eval(), torch.randn(1, 3, 8, 8))
    message = str(info.value)
    assert "'gate'" in message and "DataDependent" in message
    assert "leaf_modules" in message and "--leaf DataDependent" in message


@pytest.mark.parametrize("leaf", [DataDependent, "gate", "DataDependent"])
def test_leaf_modules_remedy_works(leaf: object) -> None:
    model = Net().eval()
    x = torch.randn(1, 3, 8, 8)
    part = partition(model, x, granularity="node", leaf_modules=[leaf])  # type: ignore[list-item]
    assert [op.name for op in part.ops] == ["stem", "gate", "head"]
    for cut in part.cuts:
        front, back = part.split(cut.index)
        assert_same_output(back(*front(x)), model(x))


def test_untraceable_root_forward() -> None:
    with pytest.raises(PartitionError, match=r"DataDependent\.forward"):
        partition(DataDependent(), torch.randn(3))


def test_cut_index_out_of_range_says_the_valid_range() -> None:
    part = partition(nn.Sequential(nn.Linear(4, 4), nn.ReLU()), torch.randn(1, 4))
    assert part.last == 2
    for bad in (-1, 3, 100):
        with pytest.raises(CutIndexError, match=r"cuts 0\.\.2"):
            part.split(bad)
    with pytest.raises(IndexError):  # still an IndexError for generic handlers
        part.split(3)


def test_bad_arguments() -> None:
    model = nn.Sequential(nn.Linear(4, 4))
    with pytest.raises(PartitionError, match="granularity must be one of"):
        partition(model, torch.randn(1, 4), granularity="block")
    with pytest.raises(PartitionError, match="takes 1 input"):
        partition(model, (torch.randn(1, 4), torch.randn(1, 4)))
    with pytest.raises(
        PartitionError, match=r"failed at op '_0'.*shapes and dtypes the model expects"
    ):
        partition(model, torch.randn(1, 5))
    with pytest.raises(PartitionError, match="tuple of tensors"):
        partition(model, [1, 2, 3])  # type: ignore[list-item]
    with pytest.raises(PartitionError, match="neither a submodule nor a submodule's class"):
        partition(model, torch.randn(1, 4), leaf_modules=["nope"])


def test_non_tensor_output_is_refused() -> None:
    class ReturnsShape(nn.Module):
        def forward(self, x: Tensor) -> object:
            return x * 2, x.shape[0]

    with pytest.raises(PartitionError, match="outputs must be"):
        partition(ReturnsShape(), torch.randn(2, 3))
