"""A message trickled in is cut off for its rate, not left to the read timeout; one arriving at
a healthy rate is not."""

from __future__ import annotations

import time

import pytest

from coinfer.assembly import ModelSetup, load_model
from coinfer.edge.options import ServerOptions
from coinfer.edge.process import BackgroundServer
from coinfer.edge.store import ModelStore
from coinfer.wire.messages import StatsRequest, encode
from tests.peers import closed_by_peer, connect, read_reply


@pytest.fixture(scope="module")
def mlp() -> ModelSetup:
    return load_model("mlp")


def test_a_trickled_message_is_cut_off_for_its_rate(mlp: ModelSetup) -> None:
    store = ModelStore.of({"mlp": (mlp.torch_path(), mlp.inputs)})
    options = ServerOptions(read_timeout_s=120.0, min_receive_rate=1024.0)
    with BackgroundServer(store, options) as server:
        message = encode(StatsRequest(1))
        slow = connect(server.address)
        try:
            for byte in message[:8]:  # a byte every 0.4 s: far below 1 KiB/s
                try:
                    slow.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):  # cut off before its end
                    break
                time.sleep(0.4)
            assert closed_by_peer(slow)
        finally:
            slow.close()
        fine = connect(server.address)  # the same message at once is answered
        try:
            fine.sendall(message)
            assert read_reply(fine) is not None
        finally:
            fine.close()
        events = server.server.stats.events
    assert events["slow_messages"] == 1 and events["read_timeouts"] == 0
