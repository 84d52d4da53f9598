"""The zoo: names, seeded creation, example inputs, early exits, and other model sources."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn

from coinfer import partition, zoo
from coinfer.zoo import BranchyAlexNet

EXPECTED = {
    "vgg16",
    "alexnet",
    "branchy_alexnet",
    "resnet18",
    "resnet50",
    "mobilenet_v2",
    "googlenet",
    "tiny_yolov2",
    "mlp",
}


def test_names_cover_the_papers_models() -> None:
    assert set(zoo.names()) == EXPECTED


@pytest.mark.parametrize(
    ("name", "out_shape"),
    [
        ("alexnet", (1, 1000)),
        ("branchy_alexnet", (1, 10)),
        ("tiny_yolov2", (1, 125, 13, 13)),
        ("mlp", (1, 1024)),
    ],
)
def test_output_shapes(name: str, out_shape: tuple[int, ...]) -> None:
    assert tuple(zoo.create(name)(*zoo.example_inputs(name)).shape) == out_shape


def test_known_multiply_accumulate_totals() -> None:
    """Published conv+FC multiply-adds: VGG16 15.5 G, ResNet-50 4.1 G, ResNet-18 1.8 G,
    MobileNetV2 300 M (its paper, Table 3)."""
    expected = {"vgg16": 15.47e9, "resnet50": 4.09e9, "resnet18": 1.81e9, "mobilenet_v2": 0.30e9}
    for name, macs in expected.items():
        part = partition(zoo.create(name), zoo.example_inputs(name))
        f = part.cuts[-1].features
        assert f["device_conv_macs"] + f["device_fc_macs"] == pytest.approx(macs, rel=0.02), name


def test_creation_is_seeded_and_leaves_the_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = zoo.create("resnet18", seed=7)
    assert torch.equal(torch.rand(1), before)
    b = zoo.create("resnet18", seed=7)
    c = zoo.create("resnet18", seed=8)
    pa, pb, pc = (dict(m.state_dict()) for m in (a, b, c))
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(pa["conv1.weight"], pc["conv1.weight"])
    assert not a.training


def test_example_inputs_are_seeded_and_shaped() -> None:
    (x,) = zoo.example_inputs("vgg16")
    assert x.shape == (1, 3, 224, 224)
    assert torch.equal(x, zoo.example_inputs("vgg16")[0])
    assert zoo.example_inputs("mlp", width=64)[0].shape == (1, 64)
    assert zoo.create("mlp", depth=3, width=64)(*zoo.example_inputs("mlp", width=64)).shape == (
        1,
        64,
    )


def test_unknown_model_lists_the_choices() -> None:
    with pytest.raises(zoo.ModelNotFoundError, match="vgg16"):
        zoo.create("vgg17")


def test_user_factory_by_module_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent(
            """
            from torch import nn
            def tiny():
                return nn.Sequential(nn.Linear(6, 3), nn.ReLU())
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    model = zoo.create("my_models:tiny")
    assert isinstance(model, nn.Sequential)
    with pytest.raises(ValueError, match="input shape"):
        zoo.example_inputs("my_models:tiny")
    (x,) = zoo.example_inputs("my_models:tiny", shapes=((2, 6),))
    assert model(x).shape == (2, 3)
    with pytest.raises(zoo.ModelNotFoundError, match="no callable"):
        zoo.create("my_models:missing")
    sys.modules.pop("my_models", None)


def test_torchvision_models_when_importable() -> None:
    try:
        import torchvision  # noqa: F401
    except Exception:
        with pytest.raises(zoo.ModelNotFoundError, match="vision"):
            zoo.create("torchvision:resnet18")
        return
    model = zoo.create("torchvision:resnet18")
    part = partition(model, zoo.example_inputs("torchvision:resnet18"))
    assert part.num_cuts > 5


class TestBranchyAlexNet:
    def setup_method(self) -> None:
        model = zoo.create("branchy_alexnet")
        assert isinstance(model, BranchyAlexNet)
        self.model = model
        (self.x,) = zoo.example_inputs("branchy_alexnet")

    def test_five_exits_agree_with_each_other(self) -> None:
        exits = self.model.forward_exits(self.x)
        assert len(exits) == 5
        assert torch.equal(exits[-1], self.model(self.x))
        for e in range(1, 6):
            assert exits[e - 1].shape == (1, 10)
            assert torch.equal(self.model.forward_to(self.x, e), exits[e - 1])
            assert torch.equal(self.model.exit_model(e)(self.x), exits[e - 1])

    def test_running_to_an_exit_stops_computing_there(self) -> None:
        ran: list[str] = []
        for name, module in self.model.named_modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.register_forward_hook(lambda *_, n=name: ran.append(n))
        self.model.forward_to(self.x, 2)
        assert ran == ["stages.0.conv1", "stages.1.conv2", "branches.1.conv", "branches.1.fc"]

    def test_each_exit_path_partitions_exactly(self) -> None:
        for e in range(1, 6):
            path = self.model.exit_model(e)
            want = path(self.x)
            part = partition(path, self.x)
            assert part.cuts[-1].name == ("fc8" if e == 5 else f"exit{e}_fc")
            for cut in part.cuts:
                front, back = part.split(cut.index)
                assert torch.equal(back(*front(self.x)), want)
        shallow = partition(self.model.exit_model(1), self.x).cuts[-1].device_macs
        deep = partition(self.model.exit_model(5), self.x).cuts[-1].device_macs
        assert shallow < deep / 5

    def test_bad_exit(self) -> None:
        with pytest.raises(ValueError, match=r"1\.\.5"):
            self.model.forward_to(self.x, 6)


def test_weights_load_strictly_from_torch_save_and_safetensors(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from coinfer.zoo import WeightsError, model_spec

    trained = zoo.create("mlp", seed=3, depth=2, width=8)
    torch.save(trained.state_dict(), tmp_path / "mlp.pt")
    save_file(trained.state_dict(), str(tmp_path / "mlp.safetensors"))
    x = torch.randn(1, 8)
    for name in ("mlp.pt", "mlp.safetensors"):
        loaded = zoo.create("mlp", depth=2, width=8, weights=tmp_path / name)
        assert torch.equal(loaded(x), trained(x))
    spec = model_spec("mlp", ["1,8"], ["depth=2", "width=8"], tmp_path / "mlp.pt")
    assert torch.equal(spec.build()(x), trained(x)) and spec.example_inputs()[0].shape == (1, 8)
    with pytest.raises(WeightsError, match="does not fit the model"):
        zoo.create("mlp", depth=3, width=8, weights=tmp_path / "mlp.pt")  # a layer missing
    with pytest.raises(WeightsError, match="does not fit the model"):
        zoo.create("mlp", depth=2, width=4, weights=tmp_path / "mlp.pt")  # other shapes
    torch.save(trained, tmp_path / "whole.pt")  # a pickled module, not a state_dict
    with pytest.raises(WeightsError, match="state_dict"):
        zoo.create("mlp", depth=2, width=8, weights=tmp_path / "whole.pt")


def test_a_factory_declares_its_inputs_and_dtypes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tokens.py").write_text(
        "import torch\nfrom torch import nn\n\n"
        "class Bag(nn.Module):\n"
        "    def __init__(self, vocab=20):\n"
        "        super().__init__()\n"
        "        self.embed = nn.Embedding(vocab, 4)\n"
        "        self.fc = nn.Linear(4, 2)\n"
        "    def forward(self, ids):\n"
        "        return self.fc(self.embed(ids).mean(dim=1))\n\n"
        "def build(vocab=20):\n"
        "    return Bag(vocab)\n\n"
        "build.example_inputs = lambda vocab=20: (torch.randint(0, vocab, (1, 6)),)\n"
    )
    monkeypatch.chdir(tmp_path)  # module:factory is imported from the current directory
    spec = zoo.model_spec("tokens:build", model_args=["vocab=30"])
    (ids,) = spec.example_inputs()
    assert ids.dtype == torch.int64 and ids.shape == (1, 6) and int(ids.max()) < 30
    given = zoo.model_spec("tokens:build", ["1,9:int64"]).example_inputs()
    assert given[0].dtype == torch.int64 and given[0].shape == (1, 9)
    by_path = zoo.create(f"{tmp_path / 'tokens.py'}:build")
    assert isinstance(by_path, torch.nn.Module)
