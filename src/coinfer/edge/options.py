"""How an edge server guards itself, as one validated object: every ``coinfer serve`` option and
every ``EdgeServer`` keyword is a field here, checked on creation, so a bad value is one clear
error before any model is loaded (docs/security.md says what each limit defends)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from coinfer.edge.budget import DEFAULT_BUDGET_BYTES
from coinfer.edge.groups import DEFAULT_MAX_GROUPS
from coinfer.edge.security import server_tls, short_token
from coinfer.errors import BadValueError
from coinfer.wire.auth import check_token
from coinfer.wire.messages import check_slowdown
from coinfer.wire.protocol import Limits

DEFAULT_MAX_CONNECTIONS = 512
DEFAULT_MAX_PER_SOURCE = 256  # half the slots: one address cannot take them all, a NAT'd fleet fits


@dataclass(frozen=True)
class ServerOptions:
    """``allow_control``: None (the default) takes CONTROL only from peers with the token, and
    refuses it on a server without one; True takes it from anyone the token admits; False
    never. ``insecure`` allows serving a non-loopback address without a token, or with one shorter
    than 16 bytes."""

    slowdown: float = 1.0
    token: str | None = None
    read_timeout_s: float = 10.0  # from a message's first byte to its last
    idle_timeout_s: float = 60.0
    write_timeout_s: float = 10.0
    batch_window_s: float = 0.0
    allow_control: bool | None = None
    max_buffer_bytes: int = DEFAULT_BUDGET_BYTES
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure: bool = False
    limits: Limits = field(default_factory=Limits)
    federation: bool = False  # keep federated learners' group statistics (SYNC)
    max_groups: int = DEFAULT_MAX_GROUPS
    login_timeout_s: float = 30.0  # from connecting to a request past the token check
    min_receive_rate: float = 1024.0  # bytes/s a message in progress keeps up after 1 s
    max_per_source: int = DEFAULT_MAX_PER_SOURCE  # connections from one address
    http_port: int | None = None  # also the Open Inference Protocol v2 (REST) here (0: any)

    def __post_init__(self) -> None:
        try:
            check_slowdown(self.slowdown)
        except ValueError as exc:
            raise BadValueError(f"--slowdown: {exc}") from None
        if self.token is not None:
            check_token(self.token)
            short_token(self.token, self.insecure)
        for name, value in (
            ("read timeout", self.read_timeout_s),
            ("idle timeout", self.idle_timeout_s),
            ("write timeout", self.write_timeout_s),
            ("login timeout", self.login_timeout_s),
        ):
            if not (math.isfinite(value) and value > 0):
                raise BadValueError(f"the {name} must be a positive number of seconds, got {value}")
        if not (math.isfinite(self.batch_window_s) and self.batch_window_s >= 0):
            raise BadValueError(f"the batch window must be >= 0 s, got {self.batch_window_s}")
        if self.max_buffer_bytes < 1024 * 1024:
            raise BadValueError(
                f"the memory budget must be at least 1 MiB, got {self.max_buffer_bytes} bytes"
            )
        if self.max_connections < 1:
            raise BadValueError(f"--max-connections must be at least 1, got {self.max_connections}")
        if not (math.isfinite(self.min_receive_rate) and self.min_receive_rate >= 0):
            raise BadValueError(
                f"--min-receive-rate must be >= 0 bytes/s, got {self.min_receive_rate}"
            )
        if self.max_per_source < 1:
            raise BadValueError(f"--max-per-source must be at least 1, got {self.max_per_source}")
        if self.tls_key is not None and self.tls_cert is None:
            raise BadValueError("--tls-key needs --tls-cert (the certificate it belongs to)")
        if self.tls_cert is not None:
            server_tls(self.tls_cert, self.tls_key)  # the files load, or a clear error now
        if self.max_groups < 1:
            raise BadValueError(f"--max-groups must be at least 1, got {self.max_groups}")
