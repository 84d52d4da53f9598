"""``coinfer ...``: thin commands that parse, call the library and print — one module per
command group, all on one Typer app."""

from coinfer.cli import (  # noqa: F401
    demo,
    edge,
    experiment,
    export,
    fleet,
    models,
    plan,
    profile,
    run,
    serve,
    simulate,
)
from coinfer.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
