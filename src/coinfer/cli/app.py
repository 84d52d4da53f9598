"""The ``coinfer`` Typer application and its consoles (commands register on it)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from coinfer import __version__

app = typer.Typer(
    help="coinfer: device-edge collaborative DNN inference. Find where to cut a model, how deep "
    "to run it, and keep learning the best cut at run time.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # help texts are plain: 'coinfer[vision]' stays as written
)
# lines are never wrapped by the console: a terminal wraps them itself, and a file or a pipe
# gets each message as one line (not cut at 80 columns mid-parenthesis)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        out.print(f"coinfer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print version.")
    ] = False,
) -> None:
    """coinfer command line."""
