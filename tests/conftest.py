"""Shared test setup: fixed threads so results are reproducible on a 2-core machine."""

from __future__ import annotations

from typing import Any

import pytest
import torch

torch.set_num_threads(2)


def assert_top_k(entry: dict[str, Any], logits: torch.Tensor, atol: float = 1e-5) -> None:
    """A results line's classifier output (its top 5) against the whole model's logits."""
    top = torch.topk(logits.reshape(-1), 5)
    assert [i for i, _ in entry["top_k"]] == top.indices.tolist()
    got = torch.tensor([v for _, v in entry["top_k"]], dtype=torch.float64)
    assert torch.allclose(got, top.values.double(), atol=atol)


def assert_same_output(got: Any, want: Any) -> None:
    """Bit-exact comparison of model outputs: tensors, tuples/lists and dicts of them."""
    if isinstance(want, torch.Tensor):
        assert isinstance(got, torch.Tensor)
        assert got.shape == want.shape and got.dtype == want.dtype
        assert torch.equal(got, want)
    elif isinstance(want, (tuple, list)):
        assert type(got) is type(want) and len(got) == len(want)
        for g, w in zip(got, want, strict=True):
            assert_same_output(g, w)
    elif isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys()
        for key in want:
            assert_same_output(got[key], want[key])
    else:
        assert got == want


@pytest.fixture(autouse=True)
def _no_grad() -> Any:
    with torch.no_grad():
        yield


from tests.edges import edges  # noqa: E402, F401  (the hostile-peer tests' edge servers)
