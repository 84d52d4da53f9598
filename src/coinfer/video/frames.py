"""Frame sources: a synthetic scene generator built from images that ship with scikit-image.

A scene is a background image with a few objects (patches of other images) moving over it;
at random times the scene cuts to another background and new objects, as a real video cuts
between shots. Frames are uint8 H x W x 3 arrays, deterministic for a seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from skimage import data
from skimage.transform import resize

from coinfer.errors import BadValueError

# Colour images in scikit-image's own package data (nothing is downloaded).
SOURCES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def _load(name: str, size: tuple[int, int]) -> np.ndarray:
    image = getattr(data, name)()
    return np.asarray(resize(image, size, anti_aliasing=True, preserve_range=True), dtype=np.uint8)


@dataclass
class _Sprite:
    patch: np.ndarray
    y: float
    x: float
    vy: float
    vx: float


class SyntheticScene:
    """Moving objects over natural backgrounds, with a scene cut on average every
    ``mean_shot_frames`` frames."""

    def __init__(
        self,
        seed: int = 0,
        size: tuple[int, int] = (224, 224),
        objects: int = 3,
        mean_shot_frames: float = 60.0,
        speed: float = 3.0,
    ) -> None:
        if mean_shot_frames < 1 or objects < 0:
            raise BadValueError("mean_shot_frames must be >= 1 and objects >= 0")
        self.rng = np.random.default_rng(seed)
        self.size = size
        self.objects = objects
        self.cut_probability = 1.0 / mean_shot_frames
        self.speed = speed
        self.images = [_load(name, size) for name in SOURCES]
        self.cuts: list[int] = []  # frame indices where a new shot starts
        self._new_shot()

    def _new_shot(self) -> None:
        h, w = self.size
        self.background = self.images[int(self.rng.integers(len(self.images)))].copy()
        self.sprites = []
        for _ in range(self.objects):
            ph, pw = int(self.rng.integers(h // 8, h // 3)), int(self.rng.integers(w // 8, w // 3))
            source = self.images[int(self.rng.integers(len(self.images)))]
            y0, x0 = int(self.rng.integers(0, h - ph)), int(self.rng.integers(0, w - pw))
            angle = self.rng.uniform(0, 2 * np.pi)
            self.sprites.append(
                _Sprite(
                    source[y0 : y0 + ph, x0 : x0 + pw].copy(),
                    float(self.rng.uniform(0, h - ph)),
                    float(self.rng.uniform(0, w - pw)),
                    self.speed * float(np.sin(angle)),
                    self.speed * float(np.cos(angle)),
                )
            )

    def _render(self) -> np.ndarray:
        frame = self.background.copy()
        h, w = self.size
        for s in self.sprites:
            ph, pw = s.patch.shape[:2]
            s.y, s.x = s.y + s.vy, s.x + s.vx
            if not 0 <= s.y <= h - ph:
                s.vy, s.y = -s.vy, float(np.clip(s.y, 0, h - ph))
            if not 0 <= s.x <= w - pw:
                s.vx, s.x = -s.vx, float(np.clip(s.x, 0, w - pw))
            y, x = int(s.y), int(s.x)
            frame[y : y + ph, x : x + pw] = s.patch
        return frame

    def frames(self, count: int) -> Iterator[np.ndarray]:
        for i in range(count):
            if i > 0 and self.rng.random() < self.cut_probability:
                self._new_shot()
                self.cuts.append(i)
            yield self._render()
