"""Real training for the early-exit model, on data that ships with scikit-learn.

scikit-learn's digits (1,797 handwritten 8x8 digits, 10 classes; from the UCI "Optical
Recognition of Handwritten Digits" set) are upscaled to 32x32 RGB, the input size of Edgent's
AlexNet. Clean digits are too easy to tell the exits apart (every exit scores ~97%), so train
and test images are shifted by up to 4 pixels and carry Gaussian noise (std 1.5 on the [-1, 1]
scale); the held-out set is corrupted once, with its own seed. BranchyNet's joint loss (the sum
of every exit's cross-entropy) trains all five exits at once. The trained weights ship inside
the package as float16 arrays in an .npz (no pickle), with a JSON file that records how they
were made and each exit's held-out accuracy (of the float16 weights, as loaded).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from coinfer.zoo.branchy import BranchyAlexNet

WEIGHTS_FILE = "branchy_alexnet_digits.npz"
META_FILE = "branchy_alexnet_digits.json"


@dataclass(frozen=True)
class TrainConfig:
    width: float = 0.5
    fc_width: int = 512
    epochs: int = 15
    batch_size: int = 64
    lr: float = 3e-3
    test_fraction: float = 0.25
    noise: float = 1.5
    shift: int = 4
    seed: int = 0


def digits(test_fraction: float = 0.25, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Train and held-out splits (stratified) of the digits, as N x 3 x 32 x 32 tensors."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    images = torch.tensor(data.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(32, 32), mode="bilinear", align_corners=False)
    images = ((images - 0.5) / 0.5).repeat(1, 3, 1, 1)
    labels = torch.tensor(data.target, dtype=torch.long)
    idx_train, idx_test = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=data.target
    )
    return images[idx_train], labels[idx_train], images[idx_test], labels[idx_test]


def corrupt(images: Tensor, noise: float, shift: int, generator: torch.Generator) -> Tensor:
    """Random translation by up to ``shift`` pixels and additive Gaussian noise of std
    ``noise``: the digits alone are too easy to tell the exits apart."""
    if shift:
        offsets = torch.randint(-shift, shift + 1, (len(images), 2), generator=generator).tolist()
        images = torch.stack(
            [
                torch.roll(img, shifts=(dy, dx), dims=(1, 2))
                for img, (dy, dx) in zip(images, offsets, strict=True)
            ]
        )
    if noise:
        images = images + noise * torch.randn(images.shape, generator=generator)
    return images


def exit_accuracies(model: BranchyAlexNet, images: Tensor, labels: Tensor) -> list[float]:
    """Held-out accuracy of every exit, shallowest first."""
    model.eval()
    with torch.inference_mode():
        outs = model.forward_exits(images)
    return [float((o.argmax(1) == labels).float().mean()) for o in outs]


def train_branchy(
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[BranchyAlexNet, dict[str, Any]]:
    """Train a BranchyAlexNet on the digits; returns the model and a record of the run."""
    torch.manual_seed(config.seed)
    x_train, y_train, x_test, y_test = digits(config.test_fraction, config.seed)
    test_gen = torch.Generator().manual_seed(config.seed + 1)
    x_test = corrupt(x_test, config.noise, config.shift, test_gen)
    model = BranchyAlexNet(num_classes=10, width=config.width, fc_width=config.fc_width)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps = config.epochs * -(-len(y_train) // config.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=steps)
    generator = torch.Generator().manual_seed(config.seed)
    start = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(y_train), generator=generator)
        total = 0.0
        for i in range(0, len(order), config.batch_size):
            batch = order[i : i + config.batch_size]
            with torch.enable_grad():  # whatever the caller's grad mode
                outs = model.forward_exits(
                    corrupt(x_train[batch], config.noise, config.shift, generator)
                )
                loss = sum(F.cross_entropy(o, y_train[batch]) for o in outs)
            assert isinstance(loss, Tensor)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(batch)
        if on_epoch is not None:
            on_epoch(epoch + 1, total / len(order))
    seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():  # the weights ship as float16: report what a user will load
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(torch.float16).to(tensor.dtype))
    record = {
        "config": asdict(config),
        "dataset": "scikit-learn load_digits (UCI optical digits), upscaled 8x8 -> 32x32 RGB",
        "train_samples": len(y_train),
        "test_samples": len(y_test),
        "train_seconds": seconds,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "exit_accuracy": exit_accuracies(model, x_test, y_test),
    }
    return model, record


def save_weights(model: BranchyAlexNet, record: dict[str, Any], folder: Path) -> None:
    """float16 arrays in an .npz (loadable without pickle) and the run record as JSON."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {k: v.detach().to(torch.float16).numpy() for k, v in model.state_dict().items()}
    np.savez_compressed(folder / WEIGHTS_FILE, **arrays)
    (folder / META_FILE).write_text(json.dumps(record, indent=2) + "\n")


def shipped_folder() -> Path:
    from coinfer.data import package_folder

    return package_folder("models")


def held_out(cfg: TrainConfig | None = None) -> tuple[Tensor, Tensor]:
    """The held-out digits the shipped weights were judged on (corrupted the same way, same
    seed): images N x 3 x 32 x 32 and their labels."""
    cfg = cfg or TrainConfig()
    _, _, x_test, y_test = digits(cfg.test_fraction, cfg.seed)
    x_test = corrupt(x_test, cfg.noise, cfg.shift, torch.Generator().manual_seed(cfg.seed + 1))
    return x_test, y_test


def held_out_correctness(model: torch.nn.Module, cfg: TrainConfig | None = None) -> np.ndarray:
    """correct[i, e-1]: does exit e of a multi-exit ``model`` classify held-out image i
    right?"""
    images, labels = held_out(cfg)
    with torch.inference_mode():
        outs = model.forward_exits(images)  # type: ignore[operator]
    return np.stack([(o.argmax(1) == labels).numpy() for o in outs], axis=1)


def held_out_order(frames: int, seed: int = 0, cfg: TrainConfig | None = None) -> np.ndarray:
    """Which held-out image each of ``frames`` frames shows: a seeded shuffle, repeated as
    needed (the simulator and the live device show the same images in the same order)."""
    cfg = cfg or TrainConfig()
    n = len(held_out(cfg)[1])
    return np.resize(np.random.default_rng(seed).permutation(n), frames)


def load_trained(folder: Path | None = None) -> tuple[BranchyAlexNet, dict[str, Any]]:
    """The shipped trained BranchyAlexNet (eval mode) and its record (per-exit accuracy)."""
    folder = folder or shipped_folder()
    record = json.loads((folder / META_FILE).read_text())
    cfg = record["config"]
    model = BranchyAlexNet(num_classes=10, width=cfg["width"], fc_width=cfg["fc_width"])
    with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as arrays:
        state = {k: torch.from_numpy(arrays[k].astype(np.float32)) for k in arrays.files}
    model.load_state_dict(state)
    return model.eval(), record


def main() -> None:
    """Retrain the shipped weights: ``python -m coinfer.zoo.training [OUT_DIR]``."""
    import sys

    torch.set_num_threads(2)
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else shipped_folder()
    model, record = train_branchy(on_epoch=lambda e, loss: print(f"epoch {e}: loss {loss:.3f}"))
    save_weights(model, record, out)
    print(f"{record['train_seconds']:.1f} s; exit accuracy {record['exit_accuracy']}; -> {out}")


if __name__ == "__main__":
    main()
