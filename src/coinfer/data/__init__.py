"""Data that ships inside the package (nothing is downloaded at run time)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from coinfer.errors import BadValueError


def package_folder(name: str) -> Path:
    return Path(str(resources.files("coinfer.data").joinpath(name)))


def trace_names() -> list[str]:
    """Names of the shipped bandwidth traces (see data/traces/README.md)."""
    return sorted(p.stem for p in package_folder("traces").glob("*.tsv"))


def trace_path(name: str) -> Path:
    """Path of a shipped trace by name (``norway_bus_1``), or of a file the user gives."""
    given = Path(name)
    if given.suffix and given.is_file():
        return given
    path = package_folder("traces") / f"{name}.tsv"
    if not path.exists():
        raise BadValueError(
            f"no trace {name!r}: shipped traces are {', '.join(trace_names())}, or give a file "
            f"path (HSDPA 'time<TAB>Mbit/s' lines, or CSV with time_s and mbps columns)"
        )
    return path
