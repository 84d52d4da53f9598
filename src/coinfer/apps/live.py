"""Live runs from names (``coinfer run``): a ``RunConfig`` checked before anything loads, then
frame by frame — the policy's system prepares the device (``systems``: Edgent's bandwidth
states, a federated learner's group and experience) and the device's session runs
(``device.session``) — or stage by stage (optimal stopping, ``systems.stopping.live``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from coinfer.assembly import DeviceSetup
from coinfer.data import trace_path
from coinfer.defaults import EDGE_CLASS, LIVE_DEVICE_CLASS
from coinfer.device.client import ClientOptions
from coinfer.device.endpoint import Endpoint
from coinfer.device.inputs import Frames
from coinfer.device.records import FrameRecord
from coinfer.device.session import LiveRun, run_frames
from coinfer.errors import BadFileError, BadValueError
from coinfer.latency.link import Link, TraceBandwidth
from coinfer.policies import registry
from coinfer.policies.experience import Experience
from coinfer.systems import registry as systems
from coinfer.systems.base import LiveRequest
from coinfer.units import parse_bandwidth

LEARNERS = ("paper", "link")


class NamedModel(Protocol):
    """What a run records of its model: a ``ModelSpec``, or the bundle a device runs."""

    @property
    def name(self) -> str: ...

    def describe(self) -> dict[str, Any]: ...


NO_RATE_BPS = 1e12  # a link shaped for its delay only


@dataclass(frozen=True)
class RunConfig:
    """A live run as asked, checked on creation (durations already read): the model, the policy
    and how many frames, the device's class, the link to shape (none: the network as it is),
    the inputs' source, and what its policy's system reads (a requirement, a group...)."""

    model: NamedModel
    policy: str = "mulinucb-link"
    frames: int = 100
    edge: str = "127.0.0.1:8765"
    device: str = LIVE_DEVICE_CLASS
    edge_class: str = EDGE_CLASS
    trace: str | None = None
    trace_scale: float = 1.0
    bandwidth: str | None = None
    rtt_s: float | None = None
    seed: int = 0
    latency_req_s: float | None = None
    channel: str | None = None
    snr_db: float = 10.0
    time_weight: float = 1.0
    group: str | None = None
    experience: Path | None = None
    learner: str = "link"
    video: Path | None = None
    images: Path | None = None
    camera: str | None = None
    inputs_file: Path | None = None
    preflight: bool = True

    def __post_init__(self) -> None:
        entry = registry.check_world(self.policy, "live")
        from coinfer.latency.channels import CHANNELS  # scipy: only for a channel

        if self.channel is not None and self.channel not in CHANNELS:
            raise BadValueError(
                f"--channel must be one of {', '.join(CHANNELS)}, not {self.channel!r}"
            )
        if self.learner not in LEARNERS:
            raise BadValueError(
                f"--learner must be one of {', '.join(LEARNERS)}, not {self.learner!r}"
            )
        if self.bandwidth is not None and self.trace is not None:
            raise BadValueError("give --trace or --bandwidth, not both")
        given = (self.video, self.images, self.camera, self.inputs_file)
        sources = sum(x is not None for x in given)
        if sources > 1:
            raise BadValueError("give one of --video, --images, --camera and --inputs")
        if (entry.kind == "stage" or self.channel is not None) and sources:
            raise BadValueError(
                "the stage-wise run (--channel, the stopping rules) runs the "
                "model's example input task after task: --video, --images, "
                "--camera and --inputs are for frame runs"
            )
        self.link()  # the trace, the bandwidth: read now, not after the model loads

    @property
    def stagewise(self) -> bool:
        return registry.entry(self.policy).kind == "stage" or self.channel is not None

    def link(self) -> Link | None:
        """The link to shape: a trace, a constant bandwidth, or an added delay (None: the
        network as it is)."""
        rtt = self.rtt_s or 0.0
        if self.trace is not None:
            return Link(TraceBandwidth.from_file(trace_path(self.trace), self.trace_scale), rtt)
        if self.bandwidth is not None:
            return Link.constant(parse_bandwidth(self.bandwidth, "--bandwidth"), rtt)
        if self.rtt_s is not None:
            return Link.constant(NO_RATE_BPS, self.rtt_s)
        return None

    def request(self) -> LiveRequest:
        """What the policy's system reads: the link, a requirement, a group and experience."""
        experience = None
        if self.experience is not None:
            try:
                experience = Experience.load(self.experience)
            except (BadValueError, BadFileError) as exc:
                raise BadFileError(f"--experience {self.experience}: {exc}") from None
        return LiveRequest(
            self.link(),
            self.trace,
            self.trace_scale,
            self.latency_req_s,
            self.group,
            experience,
            self.learner == "link",
        )


def run_live(
    config: RunConfig,
    setup: DeviceSetup,
    edge: Endpoint,
    data: Frames,
    options: ClientOptions | None = None,
    on_frame: Callable[[FrameRecord], None] | None = None,
    on_output: Callable[[FrameRecord, list[Any]], None] | None = None,
) -> LiveRun:
    """``config.frames`` frames of its policy against the edge, as its system prepares the
    device."""
    policy = config.policy
    prep = systems.live_recipe(policy)(setup, policy, edge, config.request())
    return run_frames(
        setup,
        policy,
        config.frames,
        config.link(),
        edge,
        options=options,
        seed=config.seed,
        latency_req_s=config.latency_req_s,
        fields=prep.fields,
        group=prep.group,
        data=data,
        emulate=config.device != "host",
        check_edge=config.preflight,
        on_frame=on_frame,
        on_output=on_output,
    )
