"""The exported back halves of a bundle (``coinfer export``) served by KServe's own model
server (``kserve.ModelServer``, the Open Inference Protocol v2 over REST), so that a device
running ``coinfer run --protocol v2`` offloads to a KServe deployment instead of coinfer's edge.

    python -m coinfer.integrations.kserve BUNDLE --http_port 8080

Each exported back is one KServe model, named as ``wire.oip`` names it (``MODEL.cutK``,
``MODEL.exitE.cutK``; cut 0 is ``MODEL``), its inputs ``boundary:NAME`` and outputs
``output:NAME``; it runs in ONNX Runtime. KServe answers the protocol (health, metadata,
binary tensors); this module only says what each model takes, gives and computes.
``pip install 'coinfer[serving]'``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kserve import Model, ModelServer
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from coinfer.bundle.runtime import OnnxBundle
from coinfer.graph.types import BOUNDARY, OUTPUT
from coinfer.wire.oip import DATATYPES, v2_name


class ExportedBack(Model):
    """One cut's back half of a bundle, as a KServe model."""

    def __init__(self, bundle: OnnxBundle, cut: int, exit: int | None = None) -> None:
        super().__init__(v2_name(bundle.manifest.name, cut, exit))
        self.bundle, self.cut, self.exit = bundle, cut, exit
        row = bundle.cut(cut, exit)
        path = bundle.path(exit)
        self.inputs = [
            {"name": BOUNDARY + b.name, "datatype": DATATYPES[b.dtype], "shape": list(b.shape)}
            for b in row.boundary
        ]
        self.outputs = [
            {"name": OUTPUT + o.name, "datatype": DATATYPES[o.dtype], "shape": list(o.shape)}
            for o in path.outputs
        ]

    def load(self) -> bool:
        self.bundle.prepare(self.cut, self.exit, "back")
        self.ready = True
        return True

    def get_input_types(self) -> list[dict[str, Any]]:
        return self.inputs

    def get_output_types(self) -> list[dict[str, Any]]:
        return self.outputs

    async def predict(
        self,
        payload: InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> InferResponse:
        given = {i.name: i.as_numpy() for i in payload.inputs}
        boundary = [given[spec["name"]] for spec in self.inputs]  # KServe checked the names
        outputs = self.bundle.back(self.cut, boundary, self.exit)
        infer_outputs = []
        for spec, array in zip(self.outputs, outputs, strict=True):
            out = InferOutput(spec["name"], list(array.shape), spec["datatype"])
            out.set_data_from_numpy(array, binary_data=True)
            infer_outputs.append(out)
        return InferResponse(
            payload.id,
            self.name,
            infer_outputs,
            use_binary_outputs=payload.use_binary_outputs,
            requested_outputs=payload.request_outputs,
        )


def exported_backs(folder: str | Path, threads: int | None = None) -> list[ExportedBack]:
    """Every back half the bundle holds, of every path."""
    bundle = OnnxBundle(folder, threads)
    return [
        ExportedBack(bundle, row.index, path.exit)
        for path in bundle.manifest.paths
        for row in path.cuts
        if bundle.has_back(row.index, path.exit)
    ]


def main(argv: list[str]) -> None:
    if not argv or argv[0].startswith("-"):
        raise SystemExit("usage: python -m coinfer.integrations.kserve BUNDLE [--http_port P]")
    models = exported_backs(argv[0])
    if not models:
        raise SystemExit(f"{argv[0]}: the bundle holds no back halves (export with --parts both)")
    for model in models:
        model.load()
    ModelServer().start(models)


if __name__ == "__main__":
    main(sys.argv[1:])
