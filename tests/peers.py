"""What the hostile-peer tests share: a real `coinfer serve` in its own process (its stderr kept,
its memory read from /proc), raw sockets that speak the protocol badly on purpose, and a
well-behaved device whose every answer is checked against the whole model."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from coinfer.assembly import ModelSetup, load_model
from coinfer.device.client import ClientOptions, DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.device.live_env import run_live_env
from coinfer.device.records import FrameRecord
from coinfer.device.requests import edge_stats
from coinfer.edge.budget import process_memory, reset_peak_memory
from coinfer.policies.static import FixedCut
from coinfer.policies.types import Policy
from coinfer.wire.protocol import PREFIX, Kind, pack, unpack_header

MIB = 1024 * 1024


def device_client(
    name: str,
    part: Any,
    front_s: Sequence[float],
    address: tuple[str, int] | None,
    *,
    token: str | None = None,
    tls: Any = None,
    link: Any = None,
    **options: Any,
) -> DeviceClient:
    """A device client from the loose values a test has (``options``: ClientOptions' fields)."""
    endpoint = Endpoint(address, token, tls) if address is not None else None
    return DeviceClient(name, part, front_s, endpoint, link, ClientOptions(**options))


async def run_live(
    client: DeviceClient,
    policy: Policy,
    frames: Sequence[Sequence[torch.Tensor]],
    on_frame: Callable[[FrameRecord], None] | None = None,
) -> list[FrameRecord]:
    """Every frame in turn through the one loop: the records."""
    env = await run_live_env(client, policy, frames, on_frame=on_frame)
    return env.records


def strict_run(cwd: Path, out: Path, *args: str) -> dict[str, Any]:
    """`coinfer run ARGS --out OUT --strict --json` as a user runs it: it must finish with no
    frame fallen back; its summary."""
    run = run_cli(cwd, "run", *args, "--out", str(out), "--strict", "--json")
    assert run.returncode == 0, run.stderr
    summary: dict[str, Any] = json.loads(run.stdout)
    assert summary["fallbacks"] == 0, summary
    return summary


def run_cli(cwd: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """`coinfer ARGS` as a user runs it, in their folder (module:factory imports from there)."""
    return subprocess.run(
        [sys.executable, "-m", "coinfer.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@dataclass
class Served:
    """`coinfer serve ARGS` on a free port; ``lines`` collects its stderr as it comes."""

    args: Sequence[str]
    limits: Callable[[], None] | None = None  # run in the child before exec (resource limits)
    env: dict[str, str] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    address: tuple[str, int] = ("127.0.0.1", 0)
    cwd: str | None = None  # where `coinfer serve` runs (a user's folder, for module:factory)

    def start(self) -> Served:
        command = [sys.executable, "-m", "coinfer.cli", "serve", "--port", "0", *self.args]
        self.proc = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=self.limits,
            cwd=self.cwd,
            env={**os.environ, **self.env},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    def wait_ready(self, timeout_s: float = 180.0) -> Served:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines:
                found = re.search(r"on ([\d.]+):(\d+) \(", line)
                if found:
                    self.address = (found.group(1), int(found.group(2)))
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("the server did not start:\n" + "".join(self.lines))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def rss(self) -> int:
        return process_memory(self.pid)["rss_bytes"]

    def peak_rss(self) -> int:
        return process_memory(self.pid)["peak_rss_bytes"]

    def reset_peak(self) -> None:
        assert reset_peak_memory(self.pid), "cannot reset the peak RSS (/proc/PID/clear_refs)"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr(self) -> str:
        return "".join(self.lines)

    def stop(self) -> str:
        """SIGTERM, then its stdout (the stats JSON)."""
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        self._reader.join(timeout=5)
        return out or ""


def stats(server: Served, token: str | None = None, tls: Any = None) -> dict[str, Any]:
    return asyncio.run(edge_stats(Endpoint(server.address, token, tls)))


# -- raw peers
ATTACKER = "127.0.0.2"  # another loopback address: what the server counts per source differs
_sources = itertools.count(os.getpid() % 200 * 65536 + 3)


def fresh_source() -> str:
    """A loopback address no other socket of this process used: the server counts slots and
    failed logins per address, and a test's stray wrong tokens must not slow the next test's."""
    n = next(_sources) % (200 * 65536)
    return f"127.{1 + n // 65536}.{n // 256 % 256}.{n % 256 or 1}"


def connect(
    address: tuple[str, int], rcvbuf: int | None = None, source: str | None = None
) -> socket.socket:
    """A raw socket to the edge (from ``source``: 127.0.0.0/8 is all this machine's)."""
    sock = socket.socket()
    if rcvbuf is not None:  # before connecting, so the window is small from the start
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((source or fresh_source(), 0))
    sock.settimeout(10)
    sock.connect(address)
    return sock


def read_reply(sock: socket.socket) -> tuple[Kind, dict[str, Any], bytes] | None:
    """One message off a raw socket (None at its end)."""
    prefix = _exactly(sock, PREFIX.size)
    if prefix is None:
        return None
    _, _, kind, header_len, payload_len = PREFIX.unpack(prefix)
    header = unpack_header(_exactly(sock, header_len) or b"")
    payload = _exactly(sock, payload_len) if payload_len else b""
    return Kind(kind), header, payload or b""


def _exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        try:
            chunk = sock.recv(n - len(data))
        except (ConnectionResetError, TimeoutError):
            return None
        if not chunk:
            return None
        data += chunk
    return data


def closed_by_peer(sock: socket.socket, timeout_s: float = 30.0) -> bool:
    """True once the peer has closed (or reset) the connection, reading whatever came first."""
    sock.settimeout(timeout_s)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


@functools.cache
def fingerprint_of(model: str) -> bytes:
    """What an honest device sends as ``fp`` for a zoo model (16 zero bytes for any other)."""
    try:
        return load_model(model).part.fingerprint
    except Exception:
        return bytes(16)


def infer(
    model: str,
    cut: int,
    metas: Any,
    payload: bytes = b"",
    token: str | None = None,
    payload_len: int | None = None,
    **extra: Any,
) -> bytes:
    header: dict[str, Any] = {
        "id": 1,
        "model": model,
        "cut": cut,
        "fp": fingerprint_of(model),
        "tensors": metas,
        **extra,
    }
    if token is not None:
        header["token"] = token
    return pack(Kind.INFER, header, payload, payload_len=payload_len)


# -- a well-behaved device
@dataclass
class GoodDevice:
    """A device on real sockets whose every offloaded answer is compared with the whole
    model's: ``correct`` counts exact answers, ``wrong`` answers it accepted but should not."""

    model: ModelSetup
    address: tuple[str, int]
    token: str | None = None
    cuts: Sequence[int] = (15, 8, 22)
    offloaded: int = 0
    fallbacks: int = 0
    correct: int = 0
    wrong: int = 0
    errors: list[str] = field(default_factory=list)

    def run(self, frames: int = 3, edge_timeout_s: float = 10.0) -> GoodDevice:
        with torch.no_grad():
            want = self.model.torch_path().graph_module(*self.model.inputs)
        front = [0.0] * len(self.model.part.cuts)
        for cut in self.cuts:
            client = DeviceClient(
                self.model.name,
                self.model.part,
                front,
                Endpoint(self.address, self.token),
                options=ClientOptions(edge_timeout_s=edge_timeout_s),
            )
            records = asyncio.run(run_live(client, FixedCut(cut), [self.model.inputs] * frames))
            for record, out in zip(records, client.outputs, strict=True):
                self.offloaded += record.offloaded
                self.fallbacks += record.fallback
                if record.error:
                    self.errors.append(record.error)
                if record.offloaded:
                    exact = torch.allclose(out[0], want, atol=1e-5)
                    self.correct += exact
                    self.wrong += not exact
        return self


@contextlib.contextmanager
def background(task: Callable[[], Any]) -> Iterator[list[Any]]:
    """Run ``task`` in a thread while the block runs; its result (or exception) lands in the
    yielded list once the block ends."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(task())
        except BaseException as exc:  # surfaced by the caller
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    try:
        yield box
    finally:
        thread.join(timeout=120)


# -- a hostile edge
Behaviour = Callable[[dict[str, Any], list[torch.Tensor]], bytes | None]


class EvilEdge:
    """A TCP edge on loopback that reads each INFER and answers what ``behaviour(header,
    true_outputs)`` returns (None: never answer); ``read=False`` accepts and never reads."""

    def __init__(self, model: ModelSetup, behaviour: Behaviour, read: bool = True) -> None:
        self.model = model
        self.behaviour = behaviour
        self.read = read
        self.listener = socket.create_server(("127.0.0.1", 0))
        if not read:  # a small window, so that the device's upload blocks
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.address = self.listener.getsockname()
        self.connections: list[socket.socket] = []
        self._halves: dict[int, Any] = {}
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(conn)
            if self.read:
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        from coinfer.dtypes import from_numpy
        from coinfer.graph.outputs import output_tensors
        from coinfer.wire.tensors import decode_tensors

        while True:
            try:
                message = read_reply(conn)
            except OSError:  # the test closed this edge's sockets while it was reading
                return
            if message is None:
                return
            _, header, payload = message
            cut = header["cut"]
            if cut not in self._halves:
                self._halves[cut] = self.model.torch_path().split(cut)[1]
            with torch.no_grad():
                outputs = output_tensors(
                    self._halves[cut](
                        *map(from_numpy, decode_tensors(header["tensors"], bytearray(payload)))
                    )
                )
            answer = self.behaviour(header, outputs)
            if answer is None:
                continue
            try:
                conn.sendall(answer)
            except OSError:
                return

    def close(self) -> None:
        self.listener.close()
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.close()
