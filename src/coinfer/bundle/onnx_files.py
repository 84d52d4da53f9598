"""ONNX files that share one weights file: every cut's front and back hold some of the same
layers, and VGG16's 23 cuts would otherwise write its 528 MB of weights 46 times over.

Each initializer of 1 KiB or more moves to ``weights.bin`` once (keyed by its bytes, dtype and
shape) and every part refers to it by offset (ONNX external data, which ONNX Runtime reads
beside the model file). Offsets are page-aligned so that a runtime may map them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import BinaryIO

import onnx
from onnx import numpy_helper

WEIGHTS_FILE = "weights.bin"
INLINE_BELOW = 1024  # smaller initializers stay inside their model file
ALIGN = 4096


class SharedWeights:
    """Appends each distinct initializer to one file and points parts at it."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / WEIGHTS_FILE
        self._file: BinaryIO = self.path.open("wb")
        self._offsets: dict[tuple[bytes, int, tuple[int, ...]], tuple[int, int]] = {}
        self.size = 0

    def _place(self, data: bytes, key: tuple[bytes, int, tuple[int, ...]]) -> tuple[int, int]:
        if key not in self._offsets:
            offset = -self.size % ALIGN + self.size
            self._file.write(b"\0" * (offset - self.size))
            self._file.write(data)
            self.size = offset + len(data)
            self._offsets[key] = (offset, len(data))
        return self._offsets[key]

    def externalise(self, model: onnx.ModelProto) -> None:
        """Move ``model``'s large initializers into the shared file (in place)."""
        for tensor in model.graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                raise ValueError(f"initializer {tensor.name} is already external")
            data = numpy_helper.to_array(tensor).tobytes()
            if len(data) < INLINE_BELOW:
                continue
            key = (
                hashlib.blake2b(data, digest_size=16).digest(),
                tensor.data_type,
                tuple(tensor.dims),
            )
            offset, length = self._place(data, key)
            for name in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
                tensor.ClearField(name)
            tensor.raw_data = b"\0"  # set_external_data asks for raw_data, then we drop it
            onnx.external_data_helper.set_external_data(tensor, WEIGHTS_FILE, offset, length)
            tensor.ClearField("raw_data")
        self._file.flush()  # the part is run from disk right after

    def close(self) -> None:
        self._file.close()
