"""`coinfer demo`: one system live on real sockets for about a minute, against its baselines —
the one generic demo over the systems' demo specs (``systems.registry``): the system runs its
devices, and the run it returns computes the table, the verdict on what the user should have
seen, and the plot, which are written here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from coinfer import zoo
from coinfer.errors import BadValueError
from coinfer.output import SCHEMA, dumps
from coinfer.report import markdown_table
from coinfer.systems import registry
from coinfer.systems.base import DemoConfig, DemoHooks, DemoRun, DemoSpec


def demo_spec(config: DemoConfig) -> DemoSpec:
    """The system's demo, if it can run this ``config`` (BadValueError naming why not)."""
    systems = registry.with_demo()
    if config.system not in systems:
        raise BadValueError(f"--system must be one of {', '.join(systems)}, not {config.system!r}")
    if config.model is not None and config.model not in zoo.names():
        raise BadValueError(
            f"--model {config.model!r}: the demo runs zoo models "
            f"({', '.join(zoo.names())}); your own runs with coinfer serve + "
            f"coinfer run"
        )
    spec = registry.get(config.system).demo
    assert spec is not None
    spec.check(config)
    return spec


def default(config: DemoConfig, key: str) -> Any:
    """The config's ``key``, else the system's default for it."""
    value = getattr(config, key)
    return demo_spec(config).defaults[key] if value is None else value


def run_demo(config: DemoConfig, hooks: DemoHooks) -> DemoRun:
    return demo_spec(config).run(config, hooks)


def write_demo(run: DemoRun, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The plot, table.md and table.json (the run's whole configuration, its rows and its
    verdict) in ``out_dir``/SYSTEM (one system's run never overwrites another's); the plot's
    path and the JSON document."""
    config = run.config
    out_dir = out_dir / config.system
    settings = {
        "system": config.system,
        "model": run.setting("model"),
        "device": run.setting("device"),
        "duration_s": config.duration_s,
        "slowdown": config.slowdown,
        **run.link_spec(),
    }
    verdict, rows = run.verdict(), run.rows()
    doc = {
        "schema": SCHEMA,
        "config": settings,
        **settings,
        **verdict.as_json(),
        "warnings": run.warnings,
        "rows": rows,
        **run.document(),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    png = run.plot(out_dir / f"{config.system}.png")
    (out_dir / "table.md").write_text(markdown_table(rows))
    (out_dir / "table.json").write_text(dumps(doc) + "\n")
    return png, doc
