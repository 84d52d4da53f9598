"""The auth token, as both sides read it: a shared secret of at most 1 KiB of UTF-8, from
``--token``, a file (``--token-file``) or the ``COINFER_TOKEN`` environment variable — the last
two keeping it out of ``ps``. Without TLS it travels in clear text (docs/security.md)."""

from __future__ import annotations

import os
from pathlib import Path

from coinfer.errors import BadFileError, BadValueError

TOKEN_ENV = "COINFER_TOKEN"
MAX_TOKEN_BYTES = 1024


def check_token(token: str) -> str:
    """``token`` if it can be used (non-empty, at most 1 KiB of UTF-8), else ValueError."""
    if not isinstance(token, str) or not token:
        raise BadValueError("the auth token is empty: give a non-empty --token (or none at all)")
    try:
        size = len(token.encode("utf-8"))
    except UnicodeEncodeError:
        raise BadValueError("the auth token is not valid text: use printable characters") from None
    if size > MAX_TOKEN_BYTES:
        raise BadValueError(f"the auth token has {size} bytes: at most {MAX_TOKEN_BYTES}")
    return token


def resolve_token(token: str | None, token_file: Path | None) -> str | None:
    """The token from ``--token``, else ``--token-file`` (its first line), else the
    ``COINFER_TOKEN`` environment variable; None when none is given."""
    if token is not None and token_file is not None:
        raise BadValueError("give --token or --token-file, not both")
    if token_file is not None:
        try:
            lines = token_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise BadFileError(f"cannot read the token file {token_file}: {exc}") from None
        if not lines or not lines[0].strip():
            raise BadFileError(
                f"the token file {token_file} is empty: put the token on its first line"
            )
        token = lines[0].strip()
    elif token is None:
        token = os.environ.get(TOKEN_ENV) or None
    return None if token is None else check_token(token)
