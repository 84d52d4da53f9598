"""Edgent live: what a device's dynamic Edgent learns its bandwidth states from — the other
shipped traces at the run's scale when the run replays one, else the link's rate at the start."""

from __future__ import annotations

from coinfer.assembly import DeviceSetup
from coinfer.device.endpoint import Endpoint
from coinfer.latency.link import Link
from coinfer.latency.traces import shipped_history_bps
from coinfer.systems.base import LivePrep, LiveRequest, no_recipe


def link_history_bps(trace: str | None, scale: float, link: Link) -> list[float]:
    """The throughputs seen before a run over ``link`` (Edgent's bandwidth states)."""
    if trace is None:
        return [link.uplink.at(0.0)]
    return shipped_history_bps(trace, scale)


def prepare(setup: DeviceSetup, policy: str, edge: Endpoint, request: LiveRequest) -> LivePrep:
    """Edgent's policies know the throughputs seen before (on a real network, unshaped: none;
    the policy starts from the rate the preflight measures)."""
    prep = no_recipe(setup, policy, edge, request)
    if request.link is not None:
        prep.fields["link_history_bps"] = link_history_bps(
            request.trace, request.trace_scale, request.link
        )
    return prep
