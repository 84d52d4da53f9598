"""Edge servers in their own processes for the hostile-peer tests, started together on first use
(each takes seconds to import torch and load its model: in parallel they take that once)."""

from __future__ import annotations

import resource
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers import Served

TOKEN = "s3crét-π-of-the-tests"  # not ASCII: compared as UTF-8 bytes (16 or more of them)
BUDGET_MB = 64
MAX_GROUPS = 8  # the guarded server's federation keeps this many groups
TLS_SLOTS = 16  # the TLS server's --max-connections


@dataclass
class Edges:
    guarded: Served  # token from the environment, a 64 MiB budget, short deadlines, federation
    open: Served  # no token: CONTROL is off; also stopped and resumed by a device test
    few_fds: Served  # started under ulimit -n 256
    tls: Served  # TLS with a certificate made for the test, TLS_SLOTS slots, 3 s to handshake
    ca: Path  # the CA that signed it


def _few_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


@pytest.fixture(scope="session")
def edges(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edges]:
    import trustme

    folder = tmp_path_factory.mktemp("tls")
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = folder / "edge.pem", folder / "edge.key", folder / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    authority.cert_pem.write_to_path(str(ca_path))
    token = {"COINFER_TOKEN": TOKEN}
    servers = Edges(
        Served(
            [
                "-m",
                "alexnet",
                "--max-buffer-mb",
                str(BUDGET_MB),
                "--read-timeout",
                "1.5",
                "--write-timeout",
                "1",
                "--idle-timeout",
                "2",
                "--max-per-source",
                "32",
                "--max-connections",
                "64",
                "--federation",
                "--max-groups",
                str(MAX_GROUPS),
            ],
            env=token,
        ).start(),
        Served(["-m", "alexnet"]).start(),
        Served(["-m", "alexnet"], limits=_few_descriptors, env=token).start(),
        Served(
            [
                "-m",
                "alexnet",
                "--tls-cert",
                str(cert_path),
                "--tls-key",
                str(key_path),
                "--max-connections",
                str(TLS_SLOTS),
                "--read-timeout",
                "3",
            ],
            env=token,
        ).start(),
        ca_path,
    )
    everyone = [servers.guarded, servers.open, servers.few_fds, servers.tls]
    try:
        for server in everyone:
            server.wait_ready()
        yield servers
    finally:
        for server in everyone:
            server.stop()
    for server in everyone:
        assert "Traceback" not in server.stderr(), server.stderr()
