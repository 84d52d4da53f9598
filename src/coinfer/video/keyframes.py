"""Key frames by structural similarity (ANS: a frame whose SSIM with the previous frame is
below 0.8 is a key frame; the first frame is not)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
from skimage.color import rgb2gray
from skimage.metrics import structural_similarity

KEY_WEIGHT = 0.8
OTHER_WEIGHT = 0.2


@dataclass
class KeyFrameDetector:
    """``weight(frame)`` gives the frame's exploration weight L_t: 0.8 for a key frame, 0.2
    otherwise, or 1 − SSIM when ``continuous``. Keeps the count for the key-frame rate."""

    threshold: float = 0.8
    continuous: bool = False
    frames: int = 0
    keys: int = 0
    last_ssim: float = 1.0
    _previous: np.ndarray | None = field(default=None, repr=False)

    def is_key(self, frame: np.ndarray) -> bool:
        gray = rgb2gray(frame) if frame.ndim == 3 else frame.astype(float)
        if self._previous is None:
            self.last_ssim = 1.0
        else:
            self.last_ssim = float(structural_similarity(self._previous, gray, data_range=1.0))
        self._previous = gray
        key = self.last_ssim < self.threshold
        self.frames += 1
        self.keys += key
        return key

    def weight(self, frame: np.ndarray) -> float:
        key = self.is_key(frame)
        if self.continuous:
            return float(np.clip(1.0 - self.last_ssim, 0.0, 1.0))
        return KEY_WEIGHT if key else OTHER_WEIGHT

    @property
    def key_rate(self) -> float:
        return self.keys / self.frames if self.frames else 0.0


def key_frame_weights(
    frames: Iterable[np.ndarray],
    threshold: float = 0.8,
    continuous: bool = False,
    on_frame: Callable[[int], None] | None = None,
) -> tuple[list[float], float]:
    """Every frame's weight L_t and the key-frame rate, for a whole frame source at once (so
    every policy of a comparison sees the same key frames)."""
    detector = KeyFrameDetector(threshold=threshold, continuous=continuous)
    weights = []
    for i, frame in enumerate(frames):
        weights.append(detector.weight(frame))
        if on_frame is not None:
            on_frame(i)
    return weights, detector.key_rate
