"""Writing an experiment's results: a markdown table, the same rows as JSON, and PNG plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coinfer.output import SCHEMA, cell_text, dumps

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _pyplot() -> Any:
    """pyplot on the file-only backend (no display on servers and CI), imported when a plot is
    drawn: a device that only runs frames has no matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    return pyplot


@dataclass
class ExperimentResult:
    name: str
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    plots: list[Path] = field(default_factory=list)
    group_by: tuple[str, ...] = ()  # one table per distinct value of these columns
    config: Mapping[str, Any] = field(default_factory=dict)  # what produced the rows

    def groups(self) -> dict[str, list[dict[str, Any]]]:
        """The rows split by ``group_by`` (those columns dropped), titled by their values;
        all rows under one empty title when there is no grouping."""
        out: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows:
            title = " / ".join(str(row[k]) for k in self.group_by)
            rest = {k: v for k, v in row.items() if k not in self.group_by}
            out.setdefault(title, []).append(rest)
        return out


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "(no rows)\n"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell_text(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_result(result: ExperimentResult, out_dir: Path) -> None:
    """table.md (notes, then the table, or one per group) and table.json ({"rows": [...]})
    beside the plots."""
    out_dir.mkdir(parents=True, exist_ok=True)
    notes = "".join(f"- {n}\n" for n in result.notes)
    plots = "".join(f"![{p.stem}]({p.name})\n" for p in result.plots)
    tables = "\n".join(
        (f"## {title}\n\n" if title else "") + markdown_table(rows)
        for title, rows in result.groups().items()
    )
    text = f"# {result.name}\n\n{notes}\n{tables}\n{plots}"
    (out_dir / "table.md").write_text(text)
    doc = {
        "schema": SCHEMA,
        "experiment": result.name,
        "config": dict(result.config),
        "notes": result.notes,
        "rows": result.rows,
    }
    (out_dir / "table.json").write_text(dumps(doc) + "\n")


def save_figure(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # a legend beside the axes is kept whole
    _pyplot().close(fig)
    return path


def new_figure(
    cols: int = 1, width: float = 6.4, height: float = 4.0, rows: int = 1, sharex: bool = False
) -> tuple[Figure, Any]:
    fig, axes = _pyplot().subplots(rows, cols, figsize=(width * cols, height * rows), sharex=sharex)
    return fig, axes


def log_axis(ax: Any, axis: str = "y") -> None:
    """A log scale whose ticks read 0.2, 0.5, 1, 2 — not 2×10⁻¹ — at every power of ten."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    scale = ax.yaxis if axis == "y" else ax.xaxis
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    scale.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    scale.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    scale.set_minor_formatter(NullFormatter())


def legend_beside(ax: Any, **options: Any) -> None:
    """The legend to the right of the axes, where it covers no data (saved whole: the figure
    is cut to what it draws)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, **options)
