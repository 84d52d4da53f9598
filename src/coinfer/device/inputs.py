"""What a live device feeds its model: real images (a video file, a folder of images, a camera
through PyAV), the held-out digits for the zoo's trained model, a synthetic scene for other
image models, recorded inputs from a file (``device.input_files``) and seeded tensors of the
declared shapes and dtypes for anything else.

An input is an *image* when the model takes one tensor of shape N x C x H x W with C 1 or 3:
images are resized to H x W (bilinear), converted to C channels and scaled to [0, 1]; a model
that takes anything else gets no images (asking for them is a named error).

Frames are made in numpy and become the model's own kind at the end: torch tensors for a torch
device, numpy arrays for a device that runs a bundle in ONNX Runtime (which then needs neither
torch nor scikit-image: its default inputs are seeded arrays, its images read by Pillow).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from coinfer.arrays import seeded_arrays
from coinfer.device.input_files import as_model_input, file_inputs
from coinfer.errors import BadValueError

if TYPE_CHECKING:
    from coinfer.assembly import ModelSetup

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".gif")


@dataclass
class Frames:
    """What a live device runs: input frames, their key-frame weights, labels where the frames
    are labelled data (then every answer is checked), and where each frame came from."""

    inputs: list[tuple[Any, ...]]  # torch tensors, or numpy arrays for a bundle
    key_weights: list[float]
    labels: list[int] | None = None
    sources: list[str] = field(default_factory=list)
    origin: str = "default"  # what the frames are: default, video:FILE, images:DIR, camera:DEV


def _dtype_name(x: Any) -> str:
    return str(x.dtype).removeprefix("torch.") if not isinstance(x, np.ndarray) else x.dtype.name


def is_image_input(inputs: Sequence[Any]) -> bool:
    return (
        len(inputs) == 1
        and inputs[0].ndim == 4
        and inputs[0].shape[1] in (1, 3)
        and _dtype_name(inputs[0]) in ("float32", "float16", "bfloat16", "float64")
    )


def _bilinear_axis(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source rows for each output row, and their weights: half-pixel centres, as torch's
    bilinear ``interpolate`` (``align_corners=False``, no antialiasing) samples."""
    centres = (np.arange(size_out) + 0.5) * (size_in / size_out) - 0.5
    centres = np.clip(centres, 0.0, None)
    low = np.minimum(np.floor(centres).astype(np.int64), size_in - 1)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, (centres - low).astype(np.float32)


def _resize(x: np.ndarray, height: int, width: int) -> np.ndarray:
    """A C x H x W float32 image resized bilinearly (separably: rows, then columns)."""
    low, high, w = _bilinear_axis(x.shape[1], height)
    x = x[:, low, :] * (1 - w)[None, :, None] + x[:, high, :] * w[None, :, None]
    low, high, w = _bilinear_axis(x.shape[2], width)
    return x[:, :, low] * (1 - w)[None, None, :] + x[:, :, high] * w[None, None, :]


def image_tensor(image: np.ndarray, example: Any) -> Any:
    """An H x W (x C) image (uint8 0..255, uint16 0..65535, or floats in [0, 1]) as the
    model's input: ``example``'s size, channels and dtype, in [0, 1], of its kind (torch or
    numpy)."""
    array = np.asarray(image)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise BadValueError(f"an image must be H x W or H x W x C, got shape {array.shape}")
    x = np.ascontiguousarray(array[:, :, :3].transpose(2, 0, 1), dtype=np.float32)
    if array.dtype in (np.uint8, np.uint16):
        x /= float(np.iinfo(array.dtype).max)
    channels = int(example.shape[1])
    if channels == 1 and x.shape[0] == 3:
        x = np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), x, axes=1)[None]
    elif channels == 3 and x.shape[0] == 1:
        x = np.repeat(x, 3, axis=0)
    x = _resize(x, int(example.shape[-2]), int(example.shape[-1]))
    batch = np.broadcast_to(x[None], (int(example.shape[0]), *x.shape))
    return as_model_input(np.ascontiguousarray(batch, dtype=np.float32), example)


def _need_image_model(model: ModelSetup, what: str) -> Any:
    if not is_image_input(model.inputs):
        shapes = ", ".join(f"{list(t.shape)} {_dtype_name(t)}" for t in model.inputs)
        raise BadValueError(
            f"{what} gives images, but {model.name} takes {shapes}: images go to "
            f"models of one N x C x H x W input with C 1 or 3"
        )
    return model.inputs[0]


def image_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise BadValueError(f"--images {str(folder)!r}: no such folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        suffixes = ", ".join(IMAGE_SUFFIXES)
        raise BadValueError(f"--images {str(folder)!r} holds no images ({suffixes})")
    return files


def read_image(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            keep = opened.mode in ("L", "RGB", "I;16")
            image = np.asarray(opened if keep else opened.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError):  # unreadable, truncated, unknown
        image = None
    if image is None or image.ndim < 2 or image.size == 0:
        raise BadValueError(
            f"cannot read image {str(path)!r}: not a {path.suffix.lstrip('.') or 'known'} image "
            f"the imaging library decodes (remove it from the folder, or convert it)"
        )
    return image


def image_folder_frames(model: ModelSetup, folder: Path, frames: int) -> Frames:
    """The folder's images in name order (looped to ``frames``)."""
    example = _need_image_model(model, "--images")
    files = image_files(folder)
    chosen = [files[i % len(files)] for i in range(frames)]
    cache: dict[Path, Any] = {}
    for path in dict.fromkeys(chosen):
        cache[path] = image_tensor(read_image(path), example)
    return Frames([(cache[p],) for p in chosen], [0.2] * frames, None, [p.name for p in chosen])


def input_file_frames(model: ModelSetup, path: Path, frames: int | None = None) -> Frames:
    """The file's rows in order (``device.input_files``), looped to ``frames`` (default: once);
    each frame's source is ``FILE#ROW``."""
    rows = file_inputs(path, model.part.input_names, model.inputs)
    count = len(rows) if frames is None else frames
    order = [i % len(rows) for i in range(count)]
    return Frames(
        [rows[i] for i in order], [0.2] * count, None, [f"{path.name}#{i}" for i in order]
    )


def _stream_frames(
    model: ModelSetup, images: Iterable[np.ndarray], frames: int, source: str, what: str
) -> Frames:
    from coinfer.video import key_frame_weights

    example = _need_image_model(model, what)
    raw = []
    for image in images:
        raw.append(image)
        if len(raw) >= frames:
            break
    if not raw:
        raise BadValueError(f"{what} {source}: no frames")
    weights, _ = key_frame_weights(raw)
    inputs: list[tuple[Any, ...]] = [(image_tensor(image, example),) for image in raw]
    names = [f"{source}#{i}" for i in range(len(raw))]
    while len(inputs) < frames:  # a short video repeats
        inputs.append(inputs[len(inputs) % len(raw)])
        weights.append(weights[len(weights) % len(raw)])
        names.append(names[len(names) % len(raw)])
    return Frames(inputs, list(weights), None, names)


def video_file_frames(model: ModelSetup, path: Path, frames: int) -> Frames:
    from coinfer.video.files import video_frames

    if not path.is_file():
        raise BadValueError(f"--video {str(path)!r}: no such file")
    return _stream_frames(model, video_frames(path, frames), frames, path.name, "--video")


def camera_images(device: str) -> Iterator[np.ndarray]:
    """Frames of a camera (``/dev/video0`` through V4L2 on Linux, or any URL FFmpeg opens)."""
    import av

    try:
        container = av.open(device, format="v4l2" if device.startswith("/dev/") else None)
    except Exception as exc:
        raise BadValueError(f"--camera {device!r}: cannot open it ({exc})") from None
    with container:
        if not container.streams.video:
            raise BadValueError(f"--camera {device!r}: no video stream")
        for frame in container.decode(container.streams.video[0]):
            yield frame.to_ndarray(format="rgb24")


def camera_frames(model: ModelSetup, device: str, frames: int) -> Frames:
    """``frames`` frames captured now (then run: a capture is not paced by the run)."""
    return _stream_frames(model, camera_images(device), frames, device, "--camera")


def generated_frames(model: ModelSetup, frames: int, seed: int = 0) -> Frames:
    """Seeded tensors of the model's input shapes and dtypes, one set per frame (floats
    normal, integers in 0..1, as ``zoo.spec.InputSpec.example`` draws them)."""
    inputs: list[tuple[Any, ...]]
    if model.net is None:  # a bundle's device: numpy's generator, no torch
        rng = np.random.default_rng(seed)
        wanted = [(tuple(x.shape), x.dtype.name) for x in model.inputs]
        inputs = [tuple(seeded_arrays(wanted, rng)) for _ in range(frames)]
    else:
        import torch

        from coinfer.zoo import InputSpec

        specs = [InputSpec(tuple(t.shape), t.dtype) for t in model.inputs]
        gen = torch.Generator().manual_seed(seed)
        inputs = [tuple(s.example(gen) for s in specs) for _ in range(frames)]
    return Frames(inputs, [0.2] * frames, None, [f"generated#{i}" for i in range(frames)])


def synthetic_video_frames(model: ModelSetup, frames: int, seed: int = 0) -> Frames:
    """A synthetic scene resized to the model's image input, with key-frame weights."""
    from coinfer.video import SyntheticScene, key_frame_weights

    example = _need_image_model(model, "the synthetic video")
    scene = list(SyntheticScene(seed).frames(frames))
    weights, _ = key_frame_weights(scene)
    return Frames(
        [(image_tensor(image, example),) for image in scene],
        list(weights),
        None,
        [f"synthetic#{i}" for i in range(frames)],
    )


def live_frames(model: ModelSetup, frames: int, seed: int = 0) -> Frames:
    """The default inputs: the held-out digits (labelled) for a zoo model trained on them
    (branchy_alexnet, with its shipped weights), a synthetic video for other image models,
    seeded tensors of the declared shapes and dtypes for anything else — and for a device
    that runs a bundle (its installation has no scikit-image or scikit-learn)."""
    if model.net is None:
        return generated_frames(model, frames, seed)
    from coinfer import zoo

    spec = model.spec
    shipped = zoo.ships_weights(model.name) and (spec is None or spec.weights is None)
    if shipped:
        from coinfer.zoo.training import held_out, held_out_order

        images, labels = held_out()
        order = held_out_order(frames, seed)
        return Frames(
            [(images[i : i + 1].contiguous(),) for i in order],
            [0.2] * frames,
            [int(labels[i]) for i in order],
            [f"digits#{i}" for i in order],
        )
    if is_image_input(model.inputs):
        return synthetic_video_frames(model, frames, seed)
    return generated_frames(model, frames, seed)


def frames_for(
    model: ModelSetup,
    frames: int,
    seed: int = 0,
    video: Path | None = None,
    images: Path | None = None,
    camera: str | None = None,
    inputs_file: Path | None = None,
) -> Frames:
    """The frames a user asked for (a video file, an image folder, a camera, recorded inputs),
    else the model's default inputs (``live_frames``)."""
    if video is not None:
        chosen, origin = video_file_frames(model, video, frames), f"video:{video}"
    elif images is not None:
        chosen, origin = image_folder_frames(model, images, frames), f"images:{images}"
    elif camera is not None:
        chosen, origin = camera_frames(model, camera, frames), f"camera:{camera}"
    elif inputs_file is not None:
        chosen, origin = input_file_frames(model, inputs_file, frames), f"inputs:{inputs_file}"
    else:
        return live_frames(model, frames, seed)
    chosen.origin = origin
    return chosen
