"""`coinfer models`, `coinfer inspect` and `coinfer policies`: what there is to run."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from coinfer import zoo
from coinfer.cli.app import app, err, out
from coinfer.cli.common import fail, parse_shape
from coinfer.graph import GRANULARITIES, PartitionError, Partitioning, partition


@app.command()
def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the zoo's models with their input shapes and sources."""
    entries = [zoo.entry(name) for name in zoo.names()]
    if as_json:
        rows = [
            {
                "name": e.name,
                "input_shapes": e.input_shapes(),
                "summary": e.summary,
                "source": e.source,
            }
            for e in entries
        ]
        sys.stdout.write(json.dumps({"models": rows}, indent=2) + "\n")
        return
    table = Table(
        title="coinfer model zoo", caption="also: torchvision:NAME, package.module:factory"
    )
    for col in ("model", "input", "what", "source"):
        table.add_column(col)
    for e in entries:
        shapes = " + ".join("x".join(map(str, s)) for s in e.input_shapes())
        table.add_row(e.name, shapes, e.summary, e.source)
    out.print(table)


def _cut_rows(part: Partitioning) -> list[dict[str, Any]]:
    return [
        {
            "index": c.index,
            "name": c.name,
            "boundary": list(c.boundary),
            "boundary_shapes": [list(s) for s in c.boundary_shapes],
            "boundary_bytes": c.boundary_bytes,
            "device_macs": c.device_macs,
            "edge_macs": c.edge_macs,
            "device_param_bytes": c.device_param_bytes,
            "edge_param_bytes": c.edge_param_bytes,
            "features": dict(c.features),
        }
        for c in part.cuts
    ]


@app.command()
def inspect(
    model: Annotated[
        str,
        typer.Argument(
            help="A zoo name (see `coinfer models`), torchvision:NAME, or package.module:factory."
        ),
    ],
    granularity: Annotated[
        str,
        typer.Option(
            "--granularity",
            "-g",
            help="layer: cut between top-level layers (the papers' partition points); "
            "node: cut after every traced op.",
        ),
    ] = "layer",
    input_shape: Annotated[
        list[str] | None,
        typer.Option(
            "--input-shape",
            "-i",
            help="Input shape like 1,3,224,224; repeat once per forward argument. "
            "Defaults to the zoo model's own.",
        ),
    ] = None,
    leaf: Annotated[
        list[str] | None,
        typer.Option(
            "--leaf",
            help="Qualified name of a submodule to keep whole (for code torch.fx cannot trace).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print every cut of MODEL: what crosses it and how the work splits.

    MFLOPs count 2 FLOPs per multiply-accumulate. Cut 0 sends the raw input (all on the edge);
    the last cut runs everything on the device.
    """
    if granularity not in GRANULARITIES:
        raise fail(f"--granularity must be one of {', '.join(GRANULARITIES)}, not {granularity!r}")
    shapes = tuple(parse_shape(s) for s in input_shape) if input_shape else None
    try:
        with err.status(f"tracing {model} ...", spinner="dots"):
            net = zoo.create(model)
            inputs = zoo.example_inputs(model, shapes=shapes)
            part = partition(net, inputs, granularity=granularity, leaf_modules=leaf or ())
    except (PartitionError, zoo.ModelNotFoundError, ValueError, TypeError) as exc:
        raise fail(str(exc)) from exc

    rows = _cut_rows(part)
    if as_json:
        doc = {
            "model": model,
            "granularity": granularity,
            "input_shapes": [list(t.shape) for t in inputs],
            "num_ops": len(part.ops),
            "cuts": rows,
        }
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    total = 2 * (part.cuts[-1].device_macs) / 1e6
    table = Table(
        title=f"{model}: {len(part.cuts)} cuts ({granularity}), {len(part.ops)} ops, "
        f"{total:,.1f} MFLOPs",
        caption="device runs every layer up to and including 'device runs to'; "
        "the boundary is what it sends",
    )
    table.add_column("cut", justify="right", no_wrap=True)
    table.add_column("device runs to", overflow="fold")
    headers = (
        "boundary\ntensors",
        "boundary\nKB",
        "device\nMFLOPs",
        "edge\nMFLOPs",
        "device\nparams MB",
    )
    for header in headers:
        table.add_column(header, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(
            str(r["index"]),
            r["name"],
            str(len(r["boundary"])),
            f"{r['boundary_bytes'] / 1024:,.1f}",
            f"{2 * r['device_macs'] / 1e6:,.1f}",
            f"{2 * r['edge_macs'] / 1e6:,.1f}",
            f"{r['device_param_bytes'] / 2**20:,.2f}",
        )
    out.print(table)


@app.command()
def policies(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List every policy: what it decides and the worlds it runs in (sim: coinfer simulate;
    live: coinfer run against coinfer serve; fleet: coinfer fleet), and why not elsewhere."""
    from coinfer.policies import registry

    rows = registry.describe()
    if as_json:
        sys.stdout.write(json.dumps({"policies": rows}, indent=2) + "\n")
        return
    table = Table(title="coinfer policies", caption="one registry: the same policy, the same "
                  "tuning, in every world it runs in")  # fmt: skip
    for col in ("policy", "decides", "sim", "live", "fleet", "what"):
        table.add_column(col, no_wrap=col != "what", overflow="fold")
    for row in rows:
        marks = ["yes" if w in row["worlds"] else "-" for w in registry.WORLDS]
        table.add_row(row["name"], row["decides"], *marks, row["summary"])
    out.print(table)
