"""Where a device finds its edge: the address, the token and TLS, as one value every part of the
device takes (the client, the preflight, the federation member, the one-shot requests)."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from coinfer.errors import BadFileError, BadValueError
from coinfer.units import parse_address
from coinfer.wire.auth import resolve_token


def device_tls(ca: Path | None = None) -> ssl.SSLContext:
    """A TLS client context that verifies the edge's certificate and host name, against
    ``ca`` (a PEM file of the CA that signed it) or the system's trusted CAs."""
    try:
        context = ssl.create_default_context(cafile=None if ca is None else str(ca))
    except (OSError, ssl.SSLError) as exc:
        raise BadFileError(f"cannot load the TLS CA file {ca}: {exc}") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


PROTOCOLS = ("native", "v2")


@dataclass(frozen=True)
class Endpoint:
    """The edge at ``address``, with the token it requires (if any) and a TLS context (if it
    speaks TLS)."""

    address: tuple[str, int]
    token: str | None = None
    tls: ssl.SSLContext | None = None
    protocol: str = "native"  # or "v2": the Open Inference Protocol (REST) to any v2 server

    @property
    def host(self) -> str:
        return self.address[0]

    @property
    def port(self) -> int:
        return self.address[1]

    def __str__(self) -> str:
        where = f"{self.address[0]}:{self.address[1]}"
        if self.protocol == "v2":
            return f"{'https' if self.tls else 'http'}://{where}"
        return where

    @classmethod
    def from_options(
        cls,
        edge: str,
        token: str | None = None,
        token_file: Path | None = None,
        tls: bool = False,
        tls_ca: Path | None = None,
        what: str = "--edge",
        protocol: str = "native",
    ) -> Endpoint:
        """What the command line says: ``HOST:PORT`` (``http://HOST:PORT`` or ``https://``:
        the Open Inference Protocol v2), ``--protocol``, ``--token``/``--token-file`` (or
        ``COINFER_TOKEN``), ``--tls``/``--tls-ca``."""
        scheme, found, rest = edge.partition("://")
        if found:
            if scheme not in ("http", "https"):
                raise BadValueError(f"{what} {edge!r}: give HOST:PORT, or http(s)://HOST:PORT")
            if protocol == "native" and scheme:
                protocol = "v2"
            edge, tls = rest.rstrip("/"), tls or scheme == "https"
        if protocol not in PROTOCOLS:
            raise BadValueError(
                f"--protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}"
            )
        context = device_tls(tls_ca) if tls or tls_ca is not None else None
        address = parse_address(edge, what)
        return cls(address, resolve_token(token, token_file), context, protocol)
