"""Who may use an edge server: the auth token, TLS, and refusing to serve a network unprotected.

The token is a shared secret. It is compared as UTF-8 bytes, through SHA-256 digests and
``hmac.compare_digest``, so neither its content nor its length leaks through timing; it may come
from ``--token``, a file (``--token-file``) or the ``COINFER_TOKEN`` environment variable, the
last two keeping it out of ``ps``. Without TLS it travels in clear text: beyond a trusted
network, give the server a certificate (``--tls-cert/--tls-key``) and the devices the CA that
signed it (``--tls-ca``).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import ssl
from pathlib import Path

TOKEN_ENV = "COINFER_TOKEN"
MAX_TOKEN_BYTES = 1024


def check_token(token: str) -> str:
    """``token`` if it can be used (non-empty, at most 1 KiB of UTF-8), else ValueError."""
    if not isinstance(token, str) or not token:
        raise ValueError("the auth token is empty: give a non-empty --token (or none at all)")
    try:
        size = len(token.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError("the auth token is not valid text: use printable characters") from None
    if size > MAX_TOKEN_BYTES:
        raise ValueError(f"the auth token has {size} bytes: at most {MAX_TOKEN_BYTES}")
    return token


def resolve_token(token: str | None, token_file: Path | None) -> str | None:
    """The token from ``--token``, else ``--token-file`` (its first line), else the
    ``COINFER_TOKEN`` environment variable; None when none is given."""
    if token is not None and token_file is not None:
        raise ValueError("give --token or --token-file, not both")
    if token_file is not None:
        try:
            lines = token_file.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read the token file {token_file}: {exc}") from None
        if not lines or not lines[0].strip():
            raise ValueError(f"the token file {token_file} is empty: put the token on its first "
                             f"line")  # fmt: skip
        token = lines[0].strip()
    elif token is None:
        token = os.environ.get(TOKEN_ENV) or None
    return None if token is None else check_token(token)


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
        raise ValueError(f"--host {host} serves the network without a token: anyone who can "
                         f"reach the port could use this edge; give --token (or --token-file, "
                         f"or {TOKEN_ENV}), or --insecure to serve it open anyway")  # fmt: skip
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
        raise ValueError(f"cannot load the TLS certificate {cert} and key {key}: {exc}") from None
    return context


def device_tls(ca: Path | None = None) -> ssl.SSLContext:
    """A TLS client context that verifies the edge's certificate and host name, against
    ``ca`` (a PEM file of the CA that signed it) or the system's trusted CAs."""
    try:
        context = ssl.create_default_context(cafile=None if ca is None else str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot load the TLS CA file {ca}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
