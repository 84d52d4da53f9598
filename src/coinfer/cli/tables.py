"""Every table the CLI prints, in the format asked for: ``table`` (rich, on a terminal),
``plain`` (aligned text, the default when stdout is not a terminal), ``csv`` or ``md``. No format
ever cuts a number: rich folds a cell onto a second line rather than eliding it, and the
others take the width they need."""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from coinfer.cli.app import out
from coinfer.output import cell_text

FORMATS = ("table", "plain", "csv", "md")

TableFormat = Annotated[
    str | None,
    typer.Option(
        "--format",
        help="table, plain, csv or md (default: table on a terminal, plain otherwise).",
    ),
]


@dataclass
class TableData:
    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    caption: str = ""
    left: set[str] = field(default_factory=set)  # columns of text, aligned left
    marked: set[int] = field(default_factory=set)  # rows to highlight (the chosen cut)

    def add(self, *cells: Any, marked: bool = False) -> None:
        if marked:
            self.marked.add(len(self.rows))
        self.rows.append([cell_text(c) for c in cells])


def from_rows(
    title: str,
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str] | None = None,
    caption: str = "",
) -> TableData:
    """A table of dict rows (every key a column, in first-seen order, unless ``columns``)."""
    cols = list(columns) if columns else list(dict.fromkeys(k for r in rows for k in r))
    table = TableData(title, cols, caption=caption)
    for r in rows:
        table.add(*(r.get(c) for c in cols))
    table.left = {c for c in cols if any(_is_text(r.get(c)) for r in rows)}
    return table


def _is_text(value: Any) -> bool:
    return isinstance(value, (str, list, dict))


def check_format(fmt: str | None) -> str:
    from coinfer.cli.common import fail

    chosen = fmt or ("table" if out.is_terminal else "plain")
    if chosen not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return chosen


def render(table: TableData, fmt: str | None = None) -> None:
    chosen = check_format(fmt)
    if chosen == "table":
        out.print(_rich(table))
        return
    text = {"plain": plain, "csv": as_csv, "md": markdown}[chosen](table)
    sys.stdout.write(text)
    sys.stdout.flush()


def _rich(t: TableData) -> Table:
    table = Table(title=escape(t.title), caption=escape(t.caption) if t.caption else None)
    for col in t.columns:
        # a header never splits into fragments: its words wrap, a word is never cut
        table.add_column(
            escape(col),
            justify="left" if col in t.left else "right",
            overflow="fold",
            min_width=min(len(col), 12),
        )
    for i, row in enumerate(t.rows):
        style = "bold green" if i in t.marked else None
        table.add_row(*(escape(c) for c in row), style=style)
    return table


def plain(t: TableData) -> str:
    widths = [max([len(c), *(len(r[i]) for r in t.rows)]) for i, c in enumerate(t.columns)]

    def line(cells: Sequence[str], mark: str = " ") -> str:
        parts = [
            c.ljust(w) if col in t.left else c.rjust(w)
            for c, w, col in zip(cells, widths, t.columns, strict=True)
        ]
        return (mark + "  ".join(parts)).rstrip()

    lines = [t.title] if t.title else []
    lines.append(line(t.columns))
    lines += [line(r, "*" if i in t.marked else " ") for i, r in enumerate(t.rows)]
    if t.caption:
        lines.append(t.caption)
    return "\n".join(lines) + "\n\n"


def as_csv(t: TableData) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(t.columns)
    writer.writerows(t.rows)
    return buffer.getvalue()


def markdown(t: TableData) -> str:
    def esc(cell: str) -> str:
        return cell.replace("|", "\\|").replace("\n", " ")

    lines = [f"**{t.title}**", ""] if t.title else []
    lines.append("| " + " | ".join(esc(c) for c in t.columns) + " |")
    lines.append("|" + "".join(":---|" if c in t.left else "---:|" for c in t.columns))
    lines += ["| " + " | ".join(esc(c) for c in r) + " |" for r in t.rows]
    if t.caption:
        lines += ["", t.caption]
    return "\n".join(lines) + "\n\n"


def flat_rows(doc: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A nested statistics document as (dotted key, cell) rows: ``edge_s.p50  0.0003666``,
    floats to 4 significant digits, an empty map as ``-``."""
    rows: list[tuple[str, str]] = []
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(flat_rows(value, f"{name}."))
        elif isinstance(value, Mapping):
            rows.append((name, "-"))
        elif isinstance(value, (list, tuple)):
            rows.append((name, ", ".join(cell_text(v) for v in value) or "-"))
        else:
            rows.append((name, cell_text(value)))
    return rows


def render_edge_stats(title: str, summary: Mapping[str, Any], fmt: str | None = None) -> None:
    """An edge's STATS (``coinfer stats``, and ``coinfer serve`` as it stops): what it serves,
    then every figure on a line of its own."""
    models = summary.get("models") or {}
    if models:
        table = TableData(
            f"{title}: serving", ["model", "fingerprint", "exits"], left={"model", "fingerprint"}
        )
        for name, about in models.items():
            exits = ", ".join(map(str, about.get("exits", []))) or "-"
            table.add(name, about.get("fingerprint"), exits)
        render(table, fmt)
    rest = TableData(f"{title}: statistics", ["what", "value"], left={"what"})
    for key, value in flat_rows({k: v for k, v in summary.items() if k != "models"}):
        rest.add(key, value)
    render(rest, fmt)
