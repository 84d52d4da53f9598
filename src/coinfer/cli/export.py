"""`coinfer export`: each cut's front and back as ONNX with a manifest (``bundle.export``), and
the matrix of what exported, how exactly, or why not."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coinfer.bundle.manifest import Manifest, PartRecord
from coinfer.cli.common import (
    command,
    config_doc,
    model_spec,
    print_json,
    progress_bars,
    user_errors,
)
from coinfer.cli.options import (
    Granularity,
    InputShapes,
    Json,
    Leaf,
    ModelArgs,
    ModelArgument,
    Out,
    Weights,
)
from coinfer.cli.tables import TableData, TableFormat, check_format, render
from coinfer.errors import BadValueError
from coinfer.output import SCHEMA

Cuts = Annotated[
    str,
    typer.Option(
        "--cuts",
        help="all, or the cuts to export, comma-separated (K,...; coinfer inspect lists them). "
        "The last cut's front, the whole model on the device, is always exported: it is the "
        "device's fallback.",
    ),
]

Parts = Annotated[
    str,
    typer.Option(
        "--parts",
        help="both, fronts (what a device needs: no backs) or backs (what a server needs).",
    ),
]


def parse_cuts(text: str) -> tuple[int, ...] | None:
    """``all`` (None) or ``3,5,8``."""
    if text.strip().lower() == "all":
        return None
    try:
        cuts = tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        cuts = ()
    if not cuts:
        raise BadValueError(f"--cuts {text!r}: give all, or cut indices like 3,5,8")
    return cuts


@command()
def export(
    model: ModelArgument,
    out_dir: Out = None,
    cuts: Cuts = "all",
    parts: Parts = "both",
    granularity: Granularity = "layer",
    input_shape: InputShapes = None,
    model_arg: ModelArgs = None,
    weights: Weights = None,
    leaf: Leaf = None,
    as_json: Json = False,
    fmt: TableFormat = None,
) -> None:
    """Export MODEL's cuts as ONNX: each front (what a device runs) and back (what an edge
    runs), checked against torch in ONNX Runtime on the example input, with manifest.json (the
    cut table, boundaries, outputs, fingerprints, exits) in one folder, the weights shared.

    A part the exporter cannot translate is listed with its reason; the others still export.
    A device without PyTorch runs the bundle: coinfer run --bundle DIR.

    Examples:

    \\b
      coinfer export alexnet --out bundles/alexnet
      coinfer export branchy_alexnet --cuts 0,4,9 --out bundles/branchy
      coinfer export resnet18 --parts fronts --out bundles/resnet18-device
      coinfer export digitnet:build --weights digitnet.pt --out bundles/digitnet --json
    """
    check_format(fmt)
    if out_dir is None:
        raise BadValueError(f"give the bundle's folder: coinfer export {model} --out DIR")
    spec = model_spec(model, input_shape, model_arg, weights, leaf)
    try:  # onnx and the exporter load only for this command: every other starts without them
        from coinfer.bundle.export import ExportConfig, export_bundle
    except ImportError as exc:
        raise BadValueError(
            f"coinfer export needs ONNX ({exc.name} is missing): pip install 'coinfer[export]'"
        ) from None
    config = ExportConfig(spec, Path(out_dir), parse_cuts(cuts), granularity, parts)
    with user_errors(model), progress_bars() as report:
        manifest = export_bundle(config, report)
    doc = {
        "schema": SCHEMA,
        "config": config_doc(config),
        "bundle": str(out_dir),
        **summary(manifest),
    }
    if as_json:
        print_json(doc)
        return
    _table(manifest, doc, fmt)


def _cell(part: PartRecord) -> str:
    if part.state == "exported":
        return f"ok {part.max_rel_error:.1e}"
    return part.state


def summary(manifest: Manifest) -> dict[str, object]:
    """Counts of the parts by state, and every failure with its reason."""
    parts = [
        (p, c, side, part)
        for p in manifest.paths
        for c in p.cuts
        for side, part in (("front", c.front), ("back", c.back))
    ]
    counts = {
        state: sum(1 for *_, part in parts if part.state == state)
        for state in ("exported", "empty", "failed", "skipped")
    }
    worst = max((part.max_rel_error or 0.0 for *_, part in parts if part.runnable), default=0.0)
    failures = [
        {"exit": p.exit, "cut": c.index, "part": side, "reason": part.reason}
        for p, c, side, part in parts
        if part.state == "failed"
    ]
    return {
        "parts": counts,
        "max_rel_error": worst,
        "failures": failures,
        "manifest": manifest.document(),
    }


def _table(manifest: Manifest, doc: dict, fmt: str | None) -> None:
    counts = doc["parts"]
    table = TableData(
        f"{manifest.name}: ONNX parts against torch (max relative error on the example input)",
        ["path", "cut", "device runs to", "boundary KB", "front", "back"],
        caption=f"{counts['exported']} parts exported, {counts['failed']} failed, "
        f"{counts['skipped']} not asked; worst error {doc['max_rel_error']:.1e} "
        f"relative; bundle in {doc['bundle']}",
        left={"path", "device runs to", "front", "back"},
    )
    for path in manifest.paths:
        for cut in path.cuts:
            table.add(
                "whole" if path.exit is None else f"exit {path.exit}",
                cut.index,
                cut.name,
                f"{cut.boundary_bytes / 1e3:,.1f}",
                _cell(cut.front),
                _cell(cut.back),
            )
    render(table, fmt)
    for failure in doc["failures"]:
        where = "whole" if failure["exit"] is None else f"exit {failure['exit']}"
        typer.echo(f"{where} cut {failure['cut']} {failure['part']}: {failure['reason']}", err=True)
