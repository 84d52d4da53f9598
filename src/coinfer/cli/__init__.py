"""``coinfer ...``: thin commands that parse, call the library and print — one module per
command group, all on one Typer app. A command imports what needs torch (models, tracing, the
edge's halves, plots) in its own body: ``coinfer run --bundle`` on a device without torch loads
none of it."""

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
from coinfer.cli.common import fail
from coinfer.errors import missing_extra


def main() -> None:
    try:
        app()
    except ModuleNotFoundError as exc:  # a command's own imports, before its user_errors
        install = missing_extra(exc)
        if install is None:
            raise
        fail(install)
        raise SystemExit(2) from None


__all__ = ["app", "main"]
