"""What every command shares: commands registered with one-line errors (exit 2) for what the
user gave and a traceback for coinfer's own bugs, the models the command line names, values
from text, files checked before the work, progress on stderr, JSON on stdout."""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.markup import escape

from coinfer import units
from coinfer.cli.app import app, err
from coinfer.errors import BadValueError, CoinferError, missing_extra, raised_in_user_code
from coinfer.output import dumps

if TYPE_CHECKING:
    from coinfer.zoo.spec import ModelSpec

BUG_REPORT = "coinfer hit a bug of its own (not your input): please report it with the traceback"
STAGE_LINE_EVERY_S = 10.0  # off a terminal, progress is a line this often (and at the end)
F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> typer.Exit:
    """One line on stderr naming the problem and the fix; exit code 2."""
    text = " ".join(str(message).split())
    err.print(f"[bold red]error:[/] {escape(text)}", soft_wrap=True)
    return typer.Exit(2)


@contextmanager
def user_errors(what: str = "") -> Iterator[None]:
    """What a user gave — a bad value, model, file or edge (``coinfer.errors``), or their own
    code raising — becomes one line and exit 2, never a traceback (``COINFER_DEBUG=1`` shows
    it); anything else coinfer's own code raises is a bug and keeps its traceback."""
    try:
        yield
    except typer.Exit:  # already one line (click's Exit is a RuntimeError)
        raise
    except CoinferError as exc:
        if os.environ.get("COINFER_DEBUG"):
            raise
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        raise fail(text) from exc
    except ModuleNotFoundError as exc:
        install = missing_extra(exc)
        if install is None:
            raise
        raise fail(install) from None
    except Exception as exc:
        if not raised_in_user_code(exc):
            err.print(BUG_REPORT, markup=False)
            raise
        if os.environ.get("COINFER_DEBUG"):
            raise
        prefix = f"{what}: " if what else ""
        raise fail(
            f"{prefix}{type(exc).__name__}: {exc} (raised in your code; COINFER_DEBUG=1 "
            f"shows where)"
        ) from exc


def command(name: str | None = None) -> Callable[[F], F]:
    """Register a command on the app, its body inside ``user_errors``."""

    def register(func: F) -> F:
        @functools.wraps(func)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            with user_errors():
                return func(*args, **kwargs)

        app.command(name)(guarded)
        return func

    return register


def given(context: typer.Context, parameter: str) -> bool:
    """Whether the command line set ``parameter`` (its default, not asked for, is not given)."""
    source = context.get_parameter_source(parameter)
    return source is not None and source.name != "DEFAULT"


def model_specs(
    names: Sequence[str],
    input_shape: Sequence[str] | None = None,
    model_arg: Sequence[str] | None = None,
    weights: Sequence[str] | None = None,
    leaf: Sequence[str] | None = None,
) -> list[ModelSpec]:
    """The models the command line names. A value ``MODEL@VALUE`` is that model's; a plain value
    is every other model's (those with no ``MODEL@`` value of that option). An unknown name fails
    at once, not after minutes of other work."""
    from coinfer import zoo  # torch: only for a command that builds a model

    def scoped(values: Sequence[str] | None, name: str) -> list[str]:
        mine: list[str] = []
        plain: list[str] = []
        for value in values or ():
            owner, at, rest = value.partition("@")
            if at and owner in names:
                if owner == name:
                    mine.append(rest)
            else:
                plain.append(value)
        return mine or plain

    specs = []
    for name in names:
        files = scoped(weights, name)
        if len(files) > 1:
            raise BadValueError(
                f"{name}: {len(files)} --weights files; give one per model (--weights {name}@FILE)"
            )
        spec = zoo.model_spec(
            name,
            scoped(input_shape, name),
            scoped(model_arg, name),
            Path(files[0]) if files else None,
            scoped(leaf, name),
        )
        zoo.resolve(name)
        specs.append(spec)
    return specs


def model_spec(
    names: Sequence[str] | str | None,
    input_shape: Sequence[str] | None = None,
    model_arg: Sequence[str] | None = None,
    weights: Sequence[str] | None = None,
    leaf: Sequence[str] | None = None,
    default: str = "vgg16",
) -> ModelSpec:
    """The one model a command runs (``--model`` given once, or its default)."""
    chosen = [names] if isinstance(names, str) else list(names or [default])
    if len(chosen) != 1:
        raise BadValueError(f"give one --model, not {len(chosen)} (only serve takes several)")
    return model_specs(chosen, input_shape, model_arg, weights, leaf)[0]


def writable(path: Path | None, option: str, folder: bool = False) -> None:
    """Fail now (exit 2), not after minutes of work, when ``path`` cannot be written: its
    nearest existing folder must be writable (the missing ones are made only when something is
    written, so a run that fails first leaves nothing behind)."""
    if path is None:
        return
    if not folder and path.is_dir():
        raise fail(f"{option} {str(path)!r} is a folder: give a file name")
    target = (path if folder else path.parent).absolute()
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir():
        raise fail(
            f"{option} {str(path)!r}: {str(existing)!r} is a file, not a folder; give a path "
            f"in a folder you can write"
        )
    try:  # a probe made and removed at once: the permission bits do not tell for root
        Path(tempfile.mkdtemp(dir=existing, prefix=".coinfer-probe-")).rmdir()
    except OSError as exc:
        raise fail(
            f"{option} {str(path)!r}: cannot write in {str(existing)!r} "
            f"({exc.strerror or exc}); give a folder you can write"
        ) from None


def seconds(text: str | None, what: str, *, positive: bool = False) -> float | None:
    """``500ms``, ``0.5s`` or ``0.5`` (seconds), never negative; None for no value."""
    return None if text is None else units.parse_seconds(text, what, positive=positive)


def check_choice(option: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise BadValueError(f"{option} must be one of {', '.join(choices)}, not {value!r}")
    return value


def names_of(text: str, every: Sequence[str]) -> list[str]:
    """A comma-separated list of names, or ``all`` for ``every``."""
    return list(every) if text == "all" else [p.strip() for p in text.split(",") if p.strip()]


def file_stem(name: str) -> str:
    """A model name (``pkg.mod:factory``, ``path/file.py:factory``) as part of a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"


def config_doc(config: Any) -> dict[str, Any]:
    """A config dataclass as its JSON ``config``: paths as text, a model spec as it describes
    itself."""

    def plain(value: Any) -> Any:
        if hasattr(value, "describe"):  # a model spec, a bundle: as they describe themselves
            return value.describe()
        if isinstance(value, Path):
            return str(value)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    doc = plain(config)
    assert isinstance(doc, dict)
    return doc


def print_json(doc: Any) -> None:
    sys.stdout.write(dumps(doc) + "\n")


def stage_line(text: str) -> None:
    sys.stderr.write(f"coinfer: {text}\n")
    sys.stderr.flush()


@contextmanager
def stage(what: str) -> Iterator[None]:
    """A spinner on a terminal; elsewhere (a pipe, a log, CI) a line when a stage starts and
    one when it ends, with its duration."""
    if err.is_terminal:
        with err.status(f"{what} ...", spinner="dots"):
            yield
        return
    start = time.monotonic()
    stage_line(f"{what} ...")
    yield
    stage_line(f"{what}: done in {time.monotonic() - start:.1f} s")


@contextmanager
def progress_bars() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress display on stderr (a terminal), or a stage line every
    STAGE_LINE_EVERY_S per bar (anything else); yields ``report(what, done, total)``."""
    if not err.is_terminal:
        last: dict[str, float] = {}
        start = time.monotonic()
        finished: set[str] = set()

        def line(what: str, done: int, total: int) -> None:
            now = time.monotonic()
            if what in finished:
                return
            if done >= total:
                finished.add(what)
            if done >= total or now - last.get(what, start) >= STAGE_LINE_EVERY_S:
                last[what] = now
                stage_line(f"{what} {done}/{total} ({now - start:.0f} s)")

        yield line
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = (
        *Progress.get_default_columns()[:1],
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        tasks: dict[str, Any] = {}

        def report(what: str, done: int, total: int) -> None:
            if what not in tasks:
                tasks[what] = progress.add_task(what, total=total)
            progress.update(tasks[what], completed=done)

        yield report


INTERRUPTED_EXIT = 130  # Ctrl-C, as a shell reports it (128 + SIGINT)


@contextmanager
def interruption_said(total: int, done: list[int], results: Path | None) -> Iterator[None]:
    """Ctrl-C: how far the run got (``done[0]`` frames; the results file's whole lines, counted,
    where there is one) in a line, and exit 130 — never a traceback."""
    try:
        yield
    except KeyboardInterrupt:
        kept = ""
        if results is not None and results.exists():
            with results.open("rb") as fh:
                done[0] = sum(1 for line in fh if line.endswith(b"\n"))
            kept = f"; {results} holds them, one line each"
        err.print(f"interrupted after {done[0]} of {total} frames{kept}", markup=False)
        raise typer.Exit(INTERRUPTED_EXIT) from None
