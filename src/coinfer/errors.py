"""What can go wrong because of what a user gave, as one family: ``CoinferError``.

A bad value, model, file or edge is a ``CoinferError`` of one of the kinds below, whose message
names the problem and the fix: the CLI prints it as one line and exits 2. So is anything raised
inside the user's own code (their factory, their model's forward), which coinfer cannot fix:
``raised_in_user_code`` tells it by the files the zoo imported for the user. Anything else
raised by coinfer's own code is a bug and keeps its traceback.

The kinds also subclass the exception the standard library would raise (a ValueError for a
bad value, a KeyError for an unknown name ...), so ``except ValueError`` keeps working.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType


class CoinferError(Exception):
    """A problem with what the user gave, not a bug: the message says what to do."""


class BadValueError(CoinferError, ValueError):
    """A value the user gave (an option, a number, a name) that cannot be used."""


class BadModelError(CoinferError, ValueError):
    """A model that cannot be built, traced or split as asked."""


class BadFileError(CoinferError, ValueError):
    """A file that cannot be read or written as asked (weights, traces, experience, tokens)."""


class EdgeUnreachableError(CoinferError):
    """The edge cannot serve this device: not there, another token, another model."""


_USER_FOLDERS: set[Path] = set()  # where the user's own modules (module:factory) live
_OURS = Path(__file__).resolve().parent  # coinfer's own code: never the user's


def register_user_source(path: str | Path) -> None:
    """``path`` holds the user's code (and its folder the modules it imports): what is raised
    there is theirs, not a bug of coinfer's."""
    _USER_FOLDERS.add(Path(path).resolve().parent)


def _is_users(filename: str) -> bool:
    if not filename or filename.startswith("<"):
        return False
    path = Path(filename).resolve()
    if path.is_relative_to(_OURS) or "site-packages" in path.parts:
        return False
    return any(path.is_relative_to(folder) for folder in _USER_FOLDERS)


def _files(tb: TracebackType | None) -> list[str]:
    files = []
    while tb is not None:
        files.append(tb.tb_frame.f_code.co_filename)
        tb = tb.tb_next
    return files


def raised_in_user_code(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) came out of the user's own code."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(_is_users(f) for f in _files(current.__traceback__)):
            return True
        current = current.__cause__ or current.__context__
    return False


# what the `full` extra brings: a device installed as coinfer[device] lacks them
FULL_ONLY = frozenset({"torch", "sklearn", "skimage", "matplotlib", "av"})


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """What to install, when ``exc`` is a package of the `full` extra this install lacks."""
    missing = (exc.name or "").split(".")[0]
    if missing not in FULL_ONLY:
        return None
    return (
        f"this command needs {missing}, which this installation lacks: pip install "
        f"'coinfer[full]' (a device that runs a bundle needs only coinfer[device], for "
        f"coinfer run --bundle DIR)"
    )
