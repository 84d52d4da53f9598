"""The rules of the house (DESIGN §1), held by script: the floors (no sibling imports, nothing
importing upward), every option declared once, small modules and functions, the formatter's
layout, one family of user errors, one wire reader — and a bug of coinfer's own keeps its
traceback while a user's mistake is one line."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from coinfer.cli import app

SRC = Path(__file__).resolve().parents[1] / "src" / "coinfer"
# lower floors first; a package may import its own floor and those below, never above
FLOORS = {
    "errors": 0,
    "defaults": 0,
    "units": 0,
    "output": 0,
    "dtypes": 0,
    "arrays": 0,
    "lazy": 0,
    "data": 0,
    "report": 0,
    "graph": 1,
    "zoo": 1,
    "video": 1,
    "latency": 2,
    "policies": 3,
    "assembly": 4,
    "wire": 5,
    "sim": 5,
    "bundle": 5,
    "edge": 6,
    "device": 6,
    "systems": 7,
    "apps": 8,
    "integrations": 8,
    "cli": 9,
}
SIBLINGS = [{"edge", "device"}, {"sim", "wire"}, {"sim", "edge"}, {"sim", "device"}]
SAME_FLOOR_OK = {
    "errors",
    "defaults",
    "units",
    "output",
    "dtypes",
    "arrays",
    "lazy",
    "data",
    "report",
} | {
    "graph",
    "zoo",
    "video",
}  # the leaves know each other; so do models and frames


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(p, ast.parse(p.read_text())) for p in sorted(SRC.rglob("*.py"))]


def _package(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0].removesuffix(".py")


def _imports(tree: ast.Module) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("coinfer."):
            found.append((node.lineno, node.module.split(".")[1]))
        elif isinstance(node, ast.Import):
            found += [
                (node.lineno, a.name.split(".")[1])
                for a in node.names
                if a.name.startswith("coinfer.")
            ]
    return found


def test_no_floor_imports_a_higher_one_or_a_sibling() -> None:
    wrong = []
    for path, tree in _modules():
        mine = _package(path)
        if mine == "__init__":
            continue  # the package's own facade
        for line, other in _imports(tree):
            if other == mine or other not in FLOORS:
                continue
            upward = FLOORS[other] > FLOORS[mine]
            sibling = {mine, other} in SIBLINGS
            same = FLOORS[other] == FLOORS[mine] and not {mine, other} <= SAME_FLOOR_OK
            if upward or sibling or same:
                wrong.append(f"{path.relative_to(SRC)}:{line} imports coinfer.{other}")
    assert not wrong, "\n".join(wrong)


def test_the_floors_checker_catches_what_it_should() -> None:
    """The rule above, on imports it must refuse (so the test itself can fail)."""
    for mine, other in [
        ("sim", "device"),
        ("edge", "device"),
        ("policies", "apps"),
        ("device", "cli"),
        ("latency", "policies"),
    ]:
        upward = FLOORS[other] > FLOORS[mine]
        assert upward or {mine, other} in SIBLINGS, (mine, other)


def _declared_flags() -> dict[str, list[str]]:
    """Every flag of every ``typer.Option(...)`` in the CLI's source, and where."""
    flags: dict[str, list[str]] = {}
    for path in sorted((SRC / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "Option"
            ):
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and str(arg.value).startswith("-"):
                        flags.setdefault(str(arg.value), []).append(f"{path.name}:{node.lineno}")
    return flags


def test_every_flag_is_declared_once_and_every_help_runs() -> None:
    declared = _declared_flags()
    twice = {flag: where for flag, where in declared.items() if len(where) > 1}
    assert not twice, twice
    command = typer.main.get_command(app)
    runner = CliRunner()
    used: set[str] = set()
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        result = runner.invoke(app, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)
        for param in sub.params:
            used.update(o for o in (*param.opts, *param.secondary_opts) if o.startswith("-"))
    assert used - {"--help"} <= set(declared), used - set(declared)
    assert "--edge-class" in declared and "--edge" in declared  # one meaning each


def test_modules_and_functions_are_small() -> None:
    big_cli = [p.name for p in (SRC / "cli").glob("*.py") if len(p.read_text().splitlines()) > 300]
    assert not big_cli, big_cli
    long = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                size = (node.end_lineno or node.lineno) - node.lineno + 1
                if size > 100:
                    long.append(f"{path.relative_to(SRC)}:{node.name} ({size} lines)")
    assert not long, long


def test_the_formatter_wins() -> None:
    skips = sum(p.read_text().count("fmt: skip") for p in SRC.rglob("*.py"))
    assert skips <= 10, f"{skips} '# fmt: skip' in src: only for tables of numbers"


def test_user_errors_are_one_family() -> None:
    from coinfer import errors
    from coinfer.device.preflight import PreflightError
    from coinfer.graph.errors import PartitionError
    from coinfer.zoo.registry import ModelNotFoundError
    from coinfer.zoo.spec import ModelSpecError
    from coinfer.zoo.weights import WeightsError

    for kind in (
        PreflightError,
        PartitionError,
        ModelNotFoundError,
        ModelSpecError,
        WeightsError,
        errors.BadValueError,
        errors.BadModelError,
        errors.BadFileError,
    ):
        assert issubclass(kind, errors.CoinferError), kind
    assert issubclass(errors.BadValueError, ValueError)  # `except ValueError` still holds


def test_one_wire_reader() -> None:
    """Only the wire's parser reads a message's prefix and header; both sides read with it."""
    readers = []
    for path, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") in (
                "unpack_prefix",
                "unpack_header",
            ):
                readers.append(str(path.relative_to(SRC)))
    assert set(readers) == {"wire/parser.py"}, readers
    for side in ("edge/connection.py", "device/streams.py"):
        assert re.search(r"from coinfer\.wire\.parser import .*Parser", (SRC / side).read_text())


def test_a_bug_of_ours_keeps_its_traceback_a_user_mistake_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    runner = CliRunner()
    bad = runner.invoke(app, ["plan", "mlp", "--bandwidth", "fast"])
    assert bad.exit_code == 2 and len(bad.output.strip().splitlines()) == 1
    (tmp_path / "crashy.py").write_text(
        "from torch import nn\n\n\ndef build():\n    raise RuntimeError('my factory broke')\n"
    )
    theirs = runner.invoke(app, ["inspect", f"{tmp_path / 'crashy.py'}:build", "-i", "1,4"])
    assert theirs.exit_code == 2 and "my factory broke" in theirs.output
    assert "raised in your code" in theirs.output

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("injected bug")

    monkeypatch.setattr("coinfer.apps.plan.assemble", broken)
    ours = runner.invoke(app, ["plan", "mlp"])
    assert ours.exit_code == 1 and isinstance(ours.exception, RuntimeError)
    assert "injected bug" in str(ours.exception) and "bug of its own" in ours.output
