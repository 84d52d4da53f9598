"""``coinfer ...``: thin commands that parse, call the library and print — one module per
command group, all on one Typer app."""

from coinfer.cli import demo, experiment, fleet, models, plan, run, serve, simulate  # noqa: F401
from coinfer.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
