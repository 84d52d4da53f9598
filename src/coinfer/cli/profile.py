"""`coinfer profile`: this host's per-layer latency regressions, and how well they predict."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from coinfer.cli.common import command, print_json, progress_bars, writable
from coinfer.cli.options import Device, Json, Out
from coinfer.cli.tables import TableData, TableFormat, check_format, render
from coinfer.errors import BadValueError
from coinfer.latency.host import configure_host
from coinfer.output import SCHEMA, dumps


@command()
def profile(
    device: Device = "host",
    out_file: Out = Path("results/profile/host-fit.json"),
    per_kind: Annotated[
        int, typer.Option("--per-kind", help="Synthetic layers per layer kind (more: slower).")
    ] = 24,
    threads: Annotated[int, typer.Option("--threads", help="Intra-op threads.")] = 2,
    models: Annotated[
        str | None,
        typer.Option("--models", help="Zoo models to check, comma-separated (default: all)."),
    ] = None,
    as_json: Json = False,
    fmt: TableFormat = None,
) -> None:
    """Fit per-layer-type latency regressions on this host and report their error.

    Profiles a sweep of synthetic layers, fits one linear model per layer kind, and reports
    held-out per-kind error and each zoo model's whole-network latency predicted vs measured.
    Use the saved file as a device class: coinfer plan MODEL --device fit:FILE.

    Examples:

    \b
      coinfer profile
      coinfer profile --per-kind 48 --models alexnet,vgg16 --out host-fit.json
    """
    from coinfer import zoo
    from coinfer.latency.regression import CHECK_MODELS, fit_host, synthetic_layers

    check_format(fmt)
    out_file = out_file or Path("results/profile/host-fit.json")
    writable(out_file, "--out")
    if device != "host":
        raise BadValueError(f"only this host can be profiled (--device host), not {device!r}")
    if per_kind < 2:
        raise BadValueError("--per-kind must be at least 2")
    check = tuple(m for m in (models.split(",") if models else CHECK_MODELS) if m)
    unknown = [m for m in check if m not in zoo.names()]
    if unknown:
        raise BadValueError(f"--models: unknown {unknown}; zoo models are {', '.join(zoo.names())}")
    configure_host(threads)
    total = 2 * len(synthetic_layers(per_kind)) + len(check)
    if threads < 1:
        raise BadValueError(f"--threads must be at least 1, got {threads}")
    done = [0]
    with progress_bars() as report_progress:

        def step() -> None:
            done[0] += 1
            report_progress("profiling layers and models", done[0], total)

        record = fit_host(per_kind, models=check, on_step=step)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(dumps(record) + "\n")
    report = {
        "schema": SCHEMA,
        "file": str(out_file),
        "per_kind_test_mape": {k: m["test_mape"] for k, m in record["models"].items()},
        "per_kind_zoo_mape": {k: m.get("zoo_mape") for k, m in record["models"].items()},
        "whole_model": record["whole_model"],
        "whole_model_mape": record["whole_model_mape"],
    }
    if as_json:
        print_json(report)
        return
    kinds = TableData(
        "per-layer regressions",
        ["kind", "features", "train n", "sweep MAPE", "zoo layers", "zoo MAPE"],
        caption="sweep: held-out synthetic layers (flushed caches); zoo: every zoo layer timed "
        "inside its model",
        left={"kind", "features"},
    )
    for kind, m in record["models"].items():
        zoo_mape = f"{100 * m['zoo_mape']:.1f}%" if "zoo_mape" in m else "-"
        sweep_mape = f"{100 * m['test_mape']:.1f}%"
        kinds.add(
            kind,
            ", ".join(m["features"]),
            m["train_samples"],
            sweep_mape,
            m.get("zoo_layers", 0),
            zoo_mape,
        )
    render(kinds, fmt)
    whole = TableData(
        "whole models: predicted vs measured",
        ["model", "predicted ms", "measured ms", "error"],
        caption=f"MAPE {100 * record['whole_model_mape']:.1f}%; saved to {out_file}",
        left={"model"},
    )
    for w in record["whole_model"]:
        whole.add(
            w["model"],
            f"{1e3 * w['predicted_s']:.2f}",
            f"{1e3 * w['measured_s']:.2f}",
            f"{100 * w['error']:.1f}%",
        )
    render(whole, fmt)
