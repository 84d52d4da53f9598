"""Federation through the edge (SYNC): a real `coinfer serve --federation` against hostile
SYNCs, a device against a hostile edge's replies, and federated learners live, end to end."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from coinfer.assembly import ModelSetup, load_model
from coinfer.cli.app import app
from coinfer.device.endpoint import Endpoint
from coinfer.device.member import RemoteGroup, trusted
from coinfer.dtypes import to_arrays
from coinfer.edge.groups import RECORD_SLACK
from coinfer.policies.bandits import scaled_features
from coinfer.policies.fedlinucb import DeterminantSync, FederatedStats, Traffic
from coinfer.wire.protocol import ErrorCode, Kind, pack
from coinfer.wire.sync import EXPERIENCE, MAX_DIM, MAX_UNITS, ONLINE, Sums, triangle
from coinfer.wire.tensors import encode_tensors
from tests.edge.test_hostile_server import under_attack
from tests.edges import MAX_GROUPS, TOKEN, Edges
from tests.peers import ATTACKER, Served, connect, fresh_source, infer, read_reply, stats

runner = CliRunner()


DIM = 7  # the ANS features


def _delta(dim: int = DIM, scale: float = 1.0) -> tuple[bytes, bytes]:
    x = np.arange(1, dim + 1, dtype=float) / dim * scale  # one record: features in [0, 1]
    return triangle(np.outer(x, x)), (2.0 * x).astype("<f8").tobytes()


def _sync(
    group: str = "t",
    dim: int = DIM,
    count: int = 1,
    token: str | None = TOKEN,
    member: int = 1,
    seq: int = 1,
    **fields: Any,
) -> bytes:
    dg, db = _delta(dim if type(dim) is int and 0 < dim <= MAX_DIM else 1)
    none = Sums.zero(dim if type(dim) is int and 0 < dim <= MAX_DIM else 1)
    header: dict[str, Any] = {
        "id": 9,
        "group": group,
        "dim": dim,
        "member": member,
        "seq": seq,
        "dg": dg,
        "db": db,
        "count": count,
        **none.wire(EXPERIENCE),
        **fields,
    }
    if token is not None:
        header["token"] = token
    return pack(Kind.SYNC, header)


def _with(index: int, value: float) -> bytes:
    """A b of in-range values but one."""
    b = np.full(DIM, 0.5)
    b[index] = value
    return b.astype("<f8").tobytes()


def _ask(
    address: tuple[str, int], wire: bytes, source: str | None = None
) -> tuple[Kind, dict[str, Any]]:
    with connect(address, source=source) as sock:
        sock.sendall(wire)
        reply = read_reply(sock)
    assert reply is not None, "the server closed the connection without a word"
    return reply[0], reply[1]


@pytest.fixture(scope="module")
def guarded(edges: Edges) -> Served:
    return edges.guarded


@pytest.fixture(scope="module")
def alexnet() -> ModelSetup:
    return load_model("alexnet")


def test_members_are_kept_apart_and_a_resent_sync_counts_once(guarded: Served) -> None:
    kind, first = _ask(guarded.address, _sync("adds-up", count=2, member=1))
    assert kind is Kind.RESULT and first["count"] == 2 and first["dim"] == DIM
    kind, again = _ask(guarded.address, _sync("adds-up", count=2, member=1))  # its reply lost
    assert again["count"] == 2 and again["syncs"] == 1  # counted once
    kind, second = _ask(guarded.address, _sync("adds-up", count=3, member=2))
    g = np.frombuffer(second["dg"], dtype="<f8")
    one, _ = _delta()
    assert np.allclose(g, 2 * np.frombuffer(one, dtype="<f8"))  # its own, and member 1's
    assert second["count"] == 5 and second["syncs"] == 2
    groups = stats(guarded, TOKEN)["groups"]
    assert groups["adds-up"] == {"dim": DIM, "members": 2, "count": 5, "experience": 0, "syncs": 2}
    kind, fewer = _ask(guarded.address, _sync("adds-up", count=1, member=1, seq=2))
    assert fewer["code"] == ErrorCode.BAD_HEADER and "go down" in fewer["message"]


def test_a_member_claims_no_more_records_than_it_offloaded(guarded: Served) -> None:
    """Finding 5's SYNC: 10⁷ records, G = 10¹²·I, b = 50·10¹². Its sums are beyond any real
    records; the same count of in-range records is taken at the weight of the INFERs answered
    to its address (none) plus the slack."""
    lie: dict[str, Any] = {
        "dg": triangle(1e12 * np.eye(DIM)),
        "db": np.full(DIM, 50e12).astype("<f8").tobytes(),
        "count": 10**7,
    }
    kind, reply = _ask(guarded.address, _sync("poisoned", **lie))
    assert reply["code"] == ErrorCode.BAD_HEADER and "beyond what" in reply["message"]
    x = np.full(DIM, 1.0)
    many: dict[str, Any] = {
        "dg": triangle(10**7 * np.outer(x, x)),
        "db": (10**7 * 600.0 * x).astype("<f8").tobytes(),  # every record at the 60 s bound
        "count": 10**7,
    }
    kind, reply = _ask(guarded.address, _sync("poisoned", member=7, **many))
    assert kind is Kind.RESULT and reply["count"] == 10**7  # its own claims, as it sent them
    held = stats(guarded, TOKEN)["groups"]["poisoned"]  # what the others hear
    assert held["count"] == RECORD_SLACK and held["members"] == 1


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"dg": _delta()[0][:-8]}, "dg has"),
        ({"db": b"\x00" * 25}, "db has"),
        ({"member": 0}, "member must be"),
        ({"member": True}, "member must be"),
        ({"member": 2**63}, "member must be"),
        ({"seq": None}, "seq must be"),
        ({"dg": "not bytes"}, "dg must be bytes"),
        ({"db": _with(1, float("nan"))}, "not finite"),
        ({"db": _with(1, float("inf"))}, "not finite"),
        ({"db": _with(1, -1.0)}, "cannot be negative"),
        ({"db": _with(1, 1e300)}, "beyond"),
        # non-negative entries, yet no sum of x xᵀ: a block [[1, 2], [2, 1]] has the eigenvalue -1
        (
            {"dg": triangle(np.eye(DIM) + 2 * np.eye(DIM, k=1) + 2 * np.eye(DIM, k=-1))},
            "not a sum of x",
        ),
        ({"dg": triangle(np.eye(DIM) * 2.0)}, "beyond what 1 records"),  # a feature above 1
        ({"db": np.full(DIM, 1e4).astype("<f8").tobytes()}, "delays up to 600"),
        ({"dim": 3}, "dim must be"),
        ({"dim": 0}, "dim must be"),
        ({"dim": MAX_DIM + 1}, "dim must be"),
        ({"dim": True}, "dim must be"),
        ({"count": -1}, "count must be"),
        ({"count": 10**12}, "count must be"),
        ({"count": 0}, "no records must be all zero"),
        ({"eg": b"\x00" * 8}, "eg has 8 bytes"),
        (
            {"eb": _with(1, -2.0), "ecount": 1},
            "cannot be negative",
        ),
        ({"ecount": None}, "count must be"),
        ({"group": ""}, "group name"),
        ({"group": "x" * 65}, "group name"),
        ({"group": "white space"}, "group name"),
        ({"group": 7}, "group name"),
    ],
)
def test_impossible_statistics_are_refused_by_name(
    guarded: Served, fields: dict[str, Any], names: str
) -> None:
    kind, reply = _ask(guarded.address, _sync(**{"group": "refused", **fields}))
    assert kind is Kind.ERROR and reply["code"] == ErrorCode.BAD_HEADER, reply
    assert names in reply["message"]
    assert "refused" not in stats(guarded, TOKEN)["groups"]  # nothing was kept


def test_sync_needs_the_token_and_a_wrong_dimension_denies_nobody(guarded: Served) -> None:
    kind, reply = _ask(guarded.address, _sync("no-token", token=None))
    assert kind is Kind.ERROR and reply["code"] == ErrorCode.UNAUTHORIZED
    kind, reply = _ask(guarded.address, _sync("no-token", token="wrong"))
    assert reply["code"] == ErrorCode.UNAUTHORIZED
    assert "no-token" not in stats(guarded, TOKEN)["groups"]
    assert _ask(guarded.address, _sync("claimed", dim=8))[0] is Kind.RESULT  # claimed first
    kind, reply = _ask(guarded.address, _sync("claimed", dim=DIM, member=2))
    assert kind is Kind.RESULT and reply["dim"] == DIM and reply["count"] == 1  # its own group
    groups = stats(guarded, TOKEN)["groups"]
    assert groups["claimed"]["dim"] == 8 and groups["claimed/7"]["dim"] == DIM


def _offloaded_from(guarded: Served, alexnet: ModelSetup, source: str) -> None:
    """One INFER answered to ``source``: a member there may then claim one record more."""
    zeros = torch.zeros(1, 256, 6, 6)
    metas, raw = encode_tensors(to_arrays([zeros]))
    with connect(guarded.address, source=source) as sock:
        sock.sendall(infer("alexnet", 15, metas, bytes(raw), TOKEN))
        reply = read_reply(sock)
    assert reply is not None and reply[0] is Kind.RESULT, reply


def test_junk_groups_make_room_and_real_ones_stay(guarded: Served, alexnet: ModelSetup) -> None:
    source = fresh_source()
    for _ in range(RECORD_SLACK + 1):
        _offloaded_from(guarded, alexnet, source)
    kind, reply = _ask(guarded.address, _sync("real", count=RECORD_SLACK + 1), source)
    assert kind is Kind.RESULT and reply["count"] == RECORD_SLACK + 1  # every record backed

    def flood() -> list[int]:
        codes = []
        for i in range(MAX_GROUPS + 3):
            kind, reply = _ask(guarded.address, _sync(f"junk-{i}"))
            codes.append(0 if kind is Kind.RESULT else reply["code"])
        return codes

    assert set(under_attack(guarded, alexnet, flood)) == {0}  # each junk name made room
    groups = stats(guarded, TOKEN)["groups"]
    assert len(groups) == MAX_GROUPS and "real" in groups and "junk-0" not in groups
    for i in range(MAX_GROUPS):  # groups with a backed record each: not junk
        backer = fresh_source()
        _offloaded_from(guarded, alexnet, backer)
        _ask(guarded.address, _sync(f"backed-{i}"), backer)
    _, refused = _ask(guarded.address, _sync("one-more"))
    assert refused["code"] == ErrorCode.BUSY  # every group real: refused, not evicted
    groups = stats(guarded, TOKEN)["groups"]
    assert len(groups) == MAX_GROUPS and "real" in groups


def test_a_server_without_federation_says_how_to_get_it(edges: Edges) -> None:
    _, reply = _ask(edges.open.address, _sync(token=None))
    assert reply["code"] == ErrorCode.UNSUPPORTED and "--federation" in reply["message"]


class _EvilEdge:
    """Answers every SYNC with ``answer(request header)`` (None: never answers)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.address = self.listener.getsockname()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            message = read_reply(conn)
            if message is not None:
                reply = self.answer(message[1])
                if reply is not None:
                    conn.sendall(reply)
            threading.Timer(3.0, conn.close).start()

    def close(self) -> None:
        self.listener.close()


def _honest(header: dict[str, Any], **override: Any) -> bytes:
    """The reply an honest edge gives a first SYNC: the group holds just this delta."""
    fields = ("dg", "db", "count", "eg", "eb", "ecount")
    body = {
        "id": 0,
        "group": header["group"],
        "dim": header["dim"],
        "syncs": 1,
        **{k: header[k] for k in fields},
        **override,
    }
    return pack(Kind.RESULT, body)


@pytest.mark.parametrize(
    "answer",
    [
        lambda h: _honest(h, group="other"),
        lambda h: _honest(h, dim=h["dim"] + 1),
        lambda h: _honest(h, dg=h["dg"][:-8]),
        lambda h: _honest(h, eb=np.full(h["dim"], np.inf).astype("<f8").tobytes()),
        lambda h: _honest(h, db=np.full(h["dim"], np.nan).astype("<f8").tobytes()),
        lambda h: _honest(h, db=np.full(h["dim"], -1.0).astype("<f8").tobytes()),
        lambda h: _honest(h, count=h["count"] - 1),  # holds less than this device sent
        lambda h: _honest(h, count="many"),
        lambda h: pack(Kind.ERROR, {"id": 0, "code": 8, "message": "x" * 5000}),
        lambda h: pack(Kind.PONG, {"id": 0}),
        lambda h: b"garbage that is no message at all",
        lambda h: None,  # never answers
    ],
)
def test_a_device_keeps_its_statistics_against_a_hostile_edge(answer: Any) -> None:
    edge = _EvilEdge(answer)
    try:
        group = RemoteGroup(
            "pair", DIM, 1.0, Endpoint(edge.address), timeout_s=1.0, retry_after_s=0.0
        )
        stats_ = FederatedStats(group, DeterminantSync(0.01), Traffic())
        x = np.array([0.5, 0.2, 1.0, 0.3, 0.1, 0.4, 0.6])
        stats_.update(x, 2.0)  # grows det at once: a sync is due, queued for the edge
        assert group.out_count == 1
        before = stats_.a.copy()
        assert asyncio.run(group.flush()) is False
        assert group.wire.failures == 1 and group.wire.last_error
        assert len(group.wire.last_error) <= 300
        assert group.out_count == 1  # kept for the next try
        assert np.array_equal(stats_.a, before)  # what it learned, and nothing from the edge
        assert np.allclose(stats_.a, np.eye(DIM) + np.outer(x, x))
    finally:
        edge.close()


def test_an_honest_edge_is_heard_and_the_delta_cleared() -> None:
    edge = _EvilEdge(_honest)
    try:
        group = RemoteGroup("pair", DIM, 1.0, Endpoint(edge.address), timeout_s=2.0)
        stats_ = FederatedStats(group, DeterminantSync(0.01), Traffic())
        x = np.array([0.5, 0.2, 1.0, 0.3, 0.1, 0.4, 0.6])
        stats_.update(x, 2.0)
        assert asyncio.run(group.flush()) is True
        assert group.out_count == 0 and group.pushed == 1 and group.wire.messages == 2
        assert np.allclose(stats_.a, np.eye(DIM) + np.outer(x, x))  # the group holds its frame
        assert stats_.traffic.uploads == stats_.traffic.downloads == 1
    finally:
        edge.close()


def test_a_device_weighs_a_lying_group_against_its_own_frames() -> None:
    """Two honest members against one hostile edge or member that reports every offload at the
    60 s bound: the device's estimate stays near what its own frames say."""
    x = np.array([1.0, 0.9, 0.2, 0.1, 0.8, 0.7, 0.6])
    own = Sums(np.outer(x, x) * 4, x * 3.0 * 4, 4)  # four frames of 0.3 s (3 units)
    honest = Sums(np.outer(x, x) * 40, x * 3.1 * 40, 40)
    lies = Sums(np.outer(x, x) * 40, x * 600.0 * 40, 40)
    eye = np.eye(DIM)

    def predicted(heard: Sums) -> float:
        used = trusted(own, heard, 1.0)
        return float(x @ np.linalg.solve(eye + used.g, used.b))

    def plus(*parts: Sums) -> Sums:
        total = Sums.zero(DIM)
        for part in parts:
            total.add(part)
        return total

    assert abs(predicted(plus(own, honest)) - 3.1) < 0.2  # an honest group: heard in full
    assert predicted(plus(own, lies)) < 4.5  # a lying one: barely
    assert predicted(plus(own, honest, lies)) < 4.5
    alone = trusted(Sums.zero(DIM), lies, 1.0)  # nothing of its own yet: a bounded share
    assert alone.count <= 4 * 8


def _experience(path: Path) -> Path:
    from coinfer.latency.devices import resolve_device
    from coinfer.latency.link import Link
    from coinfer.policies.experience import collect_experience, exit_cuts
    from coinfer.sim.env import SimEnv

    part = load_model("alexnet").part
    env = SimEnv(
        part,
        resolve_device("edge-pc/8"),
        resolve_device("edge-pc"),
        Link.constant(20e6, 0.005),
        noise=0.1,
    )
    exp = collect_experience(
        env,
        (0, *exit_cuts(part)),
        12,
        "alexnet",
        "edge-pc/8",
        "edge-pc",
        "a 20 Mbit/s link, earlier",
    )
    return exp.save(path)


def test_federated_devices_share_their_group_live(tmp_path: Path) -> None:
    """Two devices of one group in turn against `coinfer serve --federation`: the second joins
    a group holding the first one's frames and its warm start; both count their messages."""
    server = Served(["-m", "alexnet", "--federation"]).start().wait_ready()
    try:
        host, port = server.address
        common = [
            "run",
            "--edge",
            f"{host}:{port}",
            "-m",
            "alexnet",
            "-n",
            "8",
            "--device",
            "edge-pc/8",
            "--bandwidth",
            "20mbit",
            "--rtt",
            "5ms",
            "--json",
            "--learner",
            "paper",
            "--group",
            "pi4-alexnet",
        ]
        warm = _experience(tmp_path / "pi4.json")
        first = runner.invoke(app, [*common, "-p", "fedlinucb-dw", "--experience", str(warm)])
        assert first.exit_code == 0, first.output
        one = json.loads(first.stdout)
        fed = one["federation"]
        assert fed["messages"] >= 2 and fed["bytes"] > 0 and fed["failed_syncs"] == 0
        assert fed["records_sent"] >= 12  # the warm start, and whatever it synced online
        assert one["config"]["group"] == "pi4-alexnet" and one["fallbacks"] == 0
        second = runner.invoke(app, [*common, "-p", "fedlinucb-d"])
        assert second.exit_code == 0, second.output
        two = json.loads(second.stdout)["federation"]
        assert two["group_records"] >= fed["records_sent"] + two["records_sent"]
        groups = stats(server)["groups"]
        assert groups["pi4-alexnet"]["dim"] == 7
        held = groups["pi4-alexnet"]
        assert held["experience"] == 12  # the warm start, kept apart from the online frames
        assert held["count"] + held["experience"] == fed["records_sent"] + two["records_sent"]
        # told, one line each, how to use it right
        wrong = runner.invoke(app, [*common[:-2], "-p", "fedlinucb-dw"])
        assert wrong.exit_code == 2 and "--group" in wrong.output
        not_federated = runner.invoke(app, [*common, "-p", "mulinucb-link"])
        assert not_federated.exit_code == 2 and "federated policies" in not_federated.output
    finally:
        server.stop()
    assert "Traceback" not in server.stderr()


def _poison(address: tuple[str, int], group: str, dim: int, frames: int) -> None:
    """Finding 5 within the bounds: ``frames`` real INFERs from the attacker's address, then
    one SYNC claiming each of them took 60 s (the range's bound) at every offloading cut."""
    part = load_model("alexnet").part
    rows = scaled_features(part.cuts)[:-1]
    rows = np.hstack([rows, np.zeros((len(rows), dim - rows.shape[1]))])
    for _ in range(frames):
        with connect(address, source=ATTACKER) as sock:
            metas, raw = encode_tensors(to_arrays([torch.zeros(1, 256, 6, 6)]))
            sock.sendall(infer("alexnet", 15, metas, bytes(raw)))
            assert (read_reply(sock) or (None,))[0] is Kind.RESULT
    claimed = rows[np.arange(frames) % len(rows)]
    lies = Sums(claimed.T @ claimed, claimed.T @ np.full(frames, MAX_UNITS), frames)
    header = {"id": 1, "group": group, "dim": dim, "member": 5, "seq": 1}
    header |= lies.wire(ONLINE) | Sums.zero(dim).wire(EXPERIENCE)
    kind, reply = _ask(address, pack(Kind.SYNC, header), ATTACKER)
    assert kind is Kind.RESULT and reply["count"] == frames  # every lie backed by a frame


def test_a_hostile_member_leaves_its_group_near_clean(tmp_path: Path) -> None:
    """Two honest `coinfer run -p fedlinucb-d` devices in turn, in a clean group and in one a
    hostile member joined first. Before, they ran every frame on the device (10.3x slower);
    now a device that has seen its own frames gives the lies next to no weight. Decisions are
    asserted, not times: frames run on the device cost 10x an offloaded one here, so 4 of 20
    is the 1.5x bound (the latencies: benchmarks/bench_hostile.py --only federation)."""
    server = Served(["-m", "alexnet", "--federation"]).start().wait_ready()
    frames = 20
    try:
        host, port = server.address
        _poison(server.address, "poisoned", 8, 40)

        def run(group: str) -> dict[str, Any]:
            args = f"run --edge {host}:{port} -m alexnet -n {frames} --device edge-pc/8 --json"
            args += f" --bandwidth 20mbit --rtt 5ms -p fedlinucb-d --group {group}"
            result = runner.invoke(app, args.split())
            assert result.exit_code == 0, result.output
            return dict(json.loads(result.stdout))

        last = str(len(load_model("alexnet").part.cuts) - 1)
        for group in ("clean", "poisoned"):
            for _ in range(2):
                outcome = run(group)
                assert outcome["fallbacks"] == 0 and outcome["federation"]["failed_syncs"] == 0
                on_device = outcome["cuts"].get(last, 0)
                assert on_device <= 4, (group, outcome["cuts"])  # clean: 0 in every run seen
    finally:
        server.stop()
    assert "Traceback" not in server.stderr()


def test_a_device_is_told_when_the_edge_keeps_no_groups(edges: Edges) -> None:
    host, port = edges.open.address
    result = runner.invoke(
        app,
        [
            "run",
            "--edge",
            f"{host}:{port}",
            "-m",
            "alexnet",
            "-n",
            "2",
            "-p",
            "fedlinucb-d",
            "--group",
            "g",
        ],
    )
    assert result.exit_code == 2 and "serve --federation" in result.output, result.output


def test_the_cans_demo_runs_four_devices_against_one_federated_edge(tmp_path: Path) -> None:
    # the MLP: the mechanics are the test, AlexNet's frames only make it longer
    result = runner.invoke(
        app,
        [
            "demo",
            "--system",
            "cans",
            "--duration",
            "3",
            "-m",
            "mlp",
            "--out",
            str(tmp_path),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    rows = {r["policy"]: r for r in doc["rows"]}
    assert set(rows) == {"coop-1", "coop-2", "alone-1", "alone-2"}
    for name, row in rows.items():
        assert row["error"] is None and row["frames"] >= 1 and row["fallbacks"] == 0, row
        cooperating = name.startswith("coop")
        assert (row["messages"] > 0) == cooperating and (row["bytes"] > 0) == cooperating
    group = doc["groups"]["demo-pair"]
    assert group["experience"] > 0 and group["dim"] == 7  # both warm starts, measured live
    assert set(doc["simulated_pairs_s"]) == {"cooperating", "alone"}
    assert isinstance(doc["held"], bool) and isinstance(doc["simulation_agrees"], bool)
    assert (tmp_path / "cans" / "cans.png").read_bytes()[:4] == b"\x89PNG"
    assert doc["config"]["trace_scale"] == 8.0 and doc["config"]["rtt_s"] == 0.005  # WLAN
    for name in ("coop-1", "coop-2"):  # the warm-up is told before the frames
        assert f"{name}: ready (fedlinucb-dw, 12 experience records)" in result.stderr
