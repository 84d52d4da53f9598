"""`coinfer models`, `coinfer inspect` and `coinfer policies`: what there is to run."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from coinfer.cli.app import out
from coinfer.cli.common import check_choice, command, model_spec, print_json, stage, user_errors
from coinfer.cli.options import (
    Granularity,
    InputShapes,
    Json,
    Leaf,
    ModelArgs,
    ModelArgument,
    Weights,
)
from coinfer.cli.tables import TableData, TableFormat, check_format, render
from coinfer.output import BYTES_UNITS, FLOPS_UNITS, SCHEMA, in_unit

if TYPE_CHECKING:
    from coinfer.graph import Partitioning


@command()
def models(
    as_json: Json = False,
    fmt: TableFormat = None,
) -> None:
    """List the zoo's models with their input shapes and sources."""
    from coinfer import zoo

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
        print_json({"schema": SCHEMA, "models": rows})
        return
    table = TableData(
        "coinfer model zoo",
        ["model", "input", "what", "source"],
        caption="also: torchvision:NAME, package.module:factory, file.py:factory",
        left={"model", "input", "what", "source"},
    )
    for e in entries:
        table.add(
            e.name, " + ".join("x".join(map(str, s)) for s in e.input_shapes()), e.summary, e.source
        )
    render(table, fmt)


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


@command()
def inspect(
    model: ModelArgument,
    granularity: Granularity = "layer",
    input_shape: InputShapes = None,
    model_arg: ModelArgs = None,
    weights: Weights = None,
    leaf: Leaf = None,
    as_json: Json = False,
    fmt: TableFormat = None,
) -> None:
    """Print every cut of MODEL: what crosses it and how the work splits.

    FLOPs count 2 per multiply-accumulate; each column's unit fits its numbers (FLOPs to
    GFLOPs, B to GB). Cut 0 sends the raw input (all on the edge); the last cut runs everything
    on the device.
    """
    from coinfer.graph import GRANULARITIES, partition

    check_choice("--granularity", granularity, GRANULARITIES)
    spec = model_spec(model, input_shape, model_arg, weights, leaf)
    with user_errors(model), stage(f"tracing {model}"):
        net = spec.build()
        inputs = spec.example_inputs()
        part = partition(net, inputs, granularity=granularity, leaf_modules=spec.leaf)

    rows = _cut_rows(part)
    if as_json:
        doc = {
            "schema": SCHEMA,
            "model": model,
            "config": spec.describe(),
            "granularity": granularity,
            "input_shapes": [list(t.shape) for t in inputs],
            "input_dtypes": [str(t.dtype).removeprefix("torch.") for t in inputs],
            "fingerprint": part.fingerprint.hex(),
            "num_ops": len(part.ops),
            "cuts": rows,
        }
        print_json(doc)
        return
    check_format(fmt)
    total_unit, (total,) = in_unit([2 * part.cuts[-1].device_macs], FLOPS_UNITS)
    bytes_unit, boundary = in_unit([r["boundary_bytes"] for r in rows], BYTES_UNITS)
    flops_unit, flops = in_unit(
        [2 * r[k] for r in rows for k in ("device_macs", "edge_macs")], FLOPS_UNITS
    )
    params_unit, params = in_unit([r["device_param_bytes"] for r in rows], BYTES_UNITS)
    table = TableData(
        f"{model}: {len(part.cuts)} cuts ({granularity}), {len(part.ops)} ops, "
        f"{total} {total_unit}",
        [
            "cut",
            "device runs to",
            "boundary tensors",
            f"boundary {bytes_unit}",
            f"device {flops_unit}",
            f"edge {flops_unit}",
            f"device params {params_unit}",
        ],
        caption="device runs every layer up to and including 'device runs to'; "
        "the boundary is what it sends",
        left={"device runs to"},
    )
    for i, r in enumerate(rows):
        table.add(
            r["index"],
            r["name"],
            len(r["boundary"]),
            boundary[i],
            flops[2 * i],
            flops[2 * i + 1],
            params[i],
        )
    render(table, fmt)


@command()
def policies(
    as_json: Json = False,
    fmt: TableFormat = None,
) -> None:
    """List every policy: what it decides and the worlds it runs in (sim: coinfer simulate;
    live: coinfer run against coinfer serve; fleet: coinfer fleet), and why not elsewhere."""
    from coinfer.policies import registry

    rows = registry.describe()
    if as_json:
        print_json({"schema": SCHEMA, "policies": rows})
        return
    table = TableData(
        "coinfer policies",
        ["policy", "decides", *registry.WORLDS, "what"],
        caption="one registry: the same policy, the same tuning, in every world it runs in",
        left={"policy", "decides", "what"},
    )
    for row in rows:
        marks = ["yes" if w in row["worlds"] else "-" for w in registry.WORLDS]
        table.add(row["name"], row["decides"], *marks, row["summary"])
    render(table, fmt)
    why: dict[tuple[str, str], list[str]] = {}  # one line per reason, naming its policies
    for row in rows:
        for world, reason in row["not_in"].items():
            why.setdefault((world, reason), []).append(row["name"])
    if why and check_format(fmt) in ("table", "plain"):  # csv and md stay tables alone
        out.print("why not elsewhere (each '-' above):", markup=False)
    else:
        why = {}
    for (world, reason), names in why.items():
        out.print(f"  not {world}: {', '.join(names)}: {reason}", markup=False)
