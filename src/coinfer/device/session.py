"""A live session of frames (what ``coinfer run`` does frame by frame): the registry's policy
for this device, the preflight, the one loop over ``LiveEnv``, and a summary that strict JSON
parsers accept."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from coinfer.assembly import DeviceSetup
from coinfer.device.client import ClientOptions, DeviceClient
from coinfer.device.endpoint import Endpoint
from coinfer.device.inputs import Frames, live_frames
from coinfer.device.live_env import LiveEnv
from coinfer.device.member import RemoteGroup
from coinfer.device.preflight import Preflight, PreflightError, preflight
from coinfer.device.records import FrameRecord, summary
from coinfer.latency.host import settle_heap
from coinfer.latency.link import Link
from coinfer.policies import registry
from coinfer.policies.loop import Step, run_loop


@dataclass(frozen=True)
class LiveRun:
    """A frame-by-frame live run: its summary, every frame's record and outputs (flat, as they
    travelled), whether each answer was right (labelled inputs), and the preflight's finding."""

    summary: dict[str, Any]
    records: list[FrameRecord]
    correct: list[bool | None]
    preflight: Preflight | None = None


def run_frames(
    setup: DeviceSetup,
    policy_name: str,
    frames: int,
    link: Link | None,
    edge: Endpoint,
    *,
    options: ClientOptions | None = None,
    seed: int = 0,
    latency_req_s: float | None = None,
    fields: Mapping[str, Any] | None = None,
    group: RemoteGroup | None = None,
    on_frame: Callable[[FrameRecord], None] | None = None,
    data: Frames | None = None,
    emulate: bool = True,
    check_edge: bool = False,
    on_output: Callable[[FrameRecord, list[Any]], None] | None = None,
    duration_s: float | None = None,
) -> LiveRun:
    """``frames`` frames through the one loop. ``link`` shapes the connection (None: a real
    network, as it is); ``check_edge`` runs the preflight first (PreflightError naming what is
    wrong), whose measured RTT and upload rate are what the policy starts from on a real
    network. ``emulate=False`` runs the device at this host's own speed. ``fields`` is what the
    policy's system adds to what it knows, ``group`` a federated learner's group on the edge
    (``systems``: each system's live recipe); ``duration_s`` ends the run early (after at least
    one frame)."""
    entry = registry.check_world(policy_name, "live")
    data = data if data is not None else live_frames(setup.model, frames, seed)
    chosen = replace(options or ClientOptions(), emulate=emulate, keep_outputs=1)
    client = DeviceClient.for_setup(setup, edge, link, chosen)
    env = LiveEnv(
        client,
        data.inputs,
        data.key_weights,
        data.labels,
        monitor=entry.watches_link,
        federation=group,
    )
    try:
        found = env.run(preflight(client, data.inputs[0])) if check_edge else None
        if found is not None and group is not None and not found.federation:
            raise PreflightError(
                f"the edge at {edge} keeps no federated statistics: start it "
                f"with coinfer serve --federation"
            )
        planning = link
        if planning is None:  # a real network: what the preflight measured
            rtt = found.rtt_s if found else 0.0
            planning = Link.constant(found.uplink_bps if found and found.uplink_bps else 10e6, rtt)
        knowledge = setup.knowledge(
            "live",
            planning,
            latency_req_s=latency_req_s,
            seed=seed,
            **(fields or {}),
        )
        policy = registry.create(policy_name, knowledge)
        if group is not None:  # join the group (and hand it the warm start) before deciding
            env.run(group.flush())
        settle_heap()  # model and frames are ready: collections need not walk them again

        def report(step: Step) -> None:
            record = env.records[step.frame]
            if on_output is not None:
                on_output(record, client.outputs[-1])
            if on_frame is not None:
                on_frame(record)

        def over() -> bool:
            return duration_s is not None and env.elapsed() >= duration_s

        run_loop(env, policy, frames, on_step=report, until=over)
    finally:
        env.close()
    result = summary(env.records)
    known = [c for c in env.correct if c is not None]
    result["accuracy"] = float(np.mean(known)) if known else None
    if latency_req_s is not None:
        hits = [r.total_s <= latency_req_s for r in env.records]
        result["latency_req_s"] = latency_req_s
        result["deadline_hit_rate"] = float(np.mean(hits)) if hits else None
    if setup.model.exits:
        result["exits"] = {
            str(e): sum(r.exit == e for r in env.records)
            for e in sorted({r.exit for r in env.records if r.exit is not None})
        }
    if found is not None:
        result["preflight"] = {"rtt_s": found.rtt_s, "uplink_bps": found.uplink_bps}
    if group is not None:
        result["federation"] = group.summary()
    return LiveRun(result, env.records, env.correct, found)


def preflight_edge(
    setup: DeviceSetup, edge: Endpoint, options: ClientOptions | None = None
) -> Preflight:
    """The preflight on a connection of its own (for runs whose client lives elsewhere: the
    stage-wise world); PreflightError naming what is wrong."""
    client = DeviceClient.for_setup(setup, edge, None, options)

    async def check() -> Preflight:
        try:
            return await preflight(client, setup.model.inputs)
        finally:
            await client.close()

    return asyncio.run(check())
