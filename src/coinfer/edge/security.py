"""Who may use an edge server: the token compared in constant time, TLS, and refusing to serve
a network unprotected.

The token (``wire.auth``) is compared as UTF-8 bytes, through SHA-256 digests and
``hmac.compare_digest``, so neither its content nor its length leaks through timing. Beyond a
trusted network, give the server a certificate (``--tls-cert/--tls-key``) and the devices the CA
that signed it (``--tls-ca``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import ssl
from pathlib import Path

from coinfer.errors import BadFileError, BadValueError
from coinfer.wire.auth import TOKEN_ENV, check_token

MIN_TOKEN_BYTES = 16  # 2-character tokens fall to a brute force over loopback in ~3 s
TOKEN_RECIPE = "python -c 'import secrets; print(secrets.token_urlsafe(24))'"


def short_token(token: str | None, insecure: bool) -> str | None:
    """Refuse an edge's token shorter than ``MIN_TOKEN_BYTES`` (ValueError), unless
    ``insecure``; returns the warning to print when serving with one anyway."""
    if token is None:
        return None
    size = len(token.encode("utf-8"))
    if size >= MIN_TOKEN_BYTES:
        return None
    what = f"the auth token has {size} bytes: an edge's needs at least {MIN_TOKEN_BYTES}"
    if not insecure:
        raise BadValueError(
            f"{what} (short ones are guessed in seconds); make one with {TOKEN_RECIPE}, "
            "or give --insecure to serve with this one anyway"
        )
    return f"{what}; serving with it anyway (--insecure): it can be guessed"


class TokenCheck:
    """Constant-time comparison of a peer's token with the server's."""

    def __init__(self, token: str | None) -> None:
        self.required = token is not None
        self._digest = _digest(check_token(token)) if token is not None else b""

    def accepts(self, given: object) -> bool:
        if not self.required:
            return True
        if not isinstance(given, str):
            return False
        try:
            digest = _digest(given)
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(digest, self._digest)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_exposure(host: str, token_required: bool, insecure: bool) -> str | None:
    """Refuse to serve beyond this machine without a token (ValueError), unless ``insecure``;
    returns a warning to print when serving a network anyway."""
    if is_loopback(host):
        return None
    if not token_required and not insecure:
        raise BadValueError(
            f"--host {host} serves the network without a token: anyone who can "
            f"reach the port could use this edge; give --token (or --token-file, "
            f"or {TOKEN_ENV}), or --insecure to serve it open anyway"
        )
    if not token_required:
        return f"serving {host} with no token (--insecure): any peer that reaches it may use it"
    return None


def server_tls(cert: Path, key: Path | None = None) -> ssl.SSLContext:
    """A TLS server context from a certificate chain and its private key (PEM files)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise BadFileError(f"cannot load the TLS certificate {cert} and key {key}: {exc}") from None
    return context
