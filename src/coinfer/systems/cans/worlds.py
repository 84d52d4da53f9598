"""The fleets CANS is studied in: device types, network classes and three worlds.

- ``3g``: M devices of K types (device class + model) on their own 3G links — the shipped
  HSDPA traces, each device at its own offset — sharing one processor-sharing edge.
- ``prototype``: the paper's two-board prototype: devices of one type (a Pi-4-class board
  running VGG16) near one fast edge on a WLAN-class link.
- ``mixed``: the same board and model on two network classes, WLAN and weak 3G, in turn:
  types that differ in what the shared statistics encode (the 7 features cannot see the link:
  on WLAN offloading the raw frame pays, on weak 3G nothing does), the case where grouping by
  type has something to keep apart.

A network class is the HSDPA loop scaled into its range, with its own RTT: real fluctuation
(the traces' own second-to-second variation) at the class's rate. WLAN: the traces ×8, a mean
over time of 11.3 Mbit/s between 1.8 and 38 Mbit/s — a small board's uplink on a busy 2.4 GHz
802.11n network, dips included — and a 5 ms RTT (docs/cans.md shows ×4 and ×12 beside it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from coinfer.assembly import zoo_setup
from coinfer.data import trace_names, trace_path
from coinfer.defaults import EDGE_CLASS, NOISE
from coinfer.errors import BadValueError
from coinfer.latency.link import Link, TraceBandwidth
from coinfer.latency.traces import concatenate_traces, shifted_trace
from coinfer.policies.experience import Experience, collect_experience, exit_cuts
from coinfer.sim.env import SimEnv, constant_load
from coinfer.sim.fleet import DeviceType, FleetDevice, FleetSim
from coinfer.video import SyntheticScene, key_frame_weights

# name: (device class, model). Pi-4-class and Jetson-Nano-class CPUs (Edgent's desktop
# regression slowed 8x and 3x) running VGG16 or tiny-YOLOv2.
DEVICE_TYPES: dict[str, tuple[str, str]] = {
    "pi4-vgg16": ("edge-pc/8", "vgg16"),
    "pi4-yolo": ("edge-pc/8", "tiny_yolov2"),
    "nano-vgg16": ("edge-pc/3", "vgg16"),
    "nano-yolo": ("edge-pc/3", "tiny_yolov2"),
}
DEVICES_PER_SLOT = 4  # the edge gets one edge-pc worth of processor-sharing slot per 4 devices
EXPERIENCE_FRAMES = 30  # offline records per device (cycling over the input cut and the exits)
KEY_FRAMES = 1000  # one synthetic scene's key-frame weights, each device from its own offset


@dataclass(frozen=True)
class NetworkClass:
    name: str
    trace_scale: float  # of the shipped HSDPA throughputs
    rtt_s: float
    description: str


NETWORKS = {
    "3g": NetworkClass(
        "3g",
        1.0,
        0.02,
        "3G: the HSDPA traces as measured (mean 1.4 Mbit/s, 0.22-4.8 Mbit/s), RTT 20 ms",
    ),
    "wlan": NetworkClass(
        "wlan", 8.0, 0.005, "WLAN: the HSDPA traces x8 (mean 11.3 Mbit/s, 1.8-38 Mbit/s), RTT 5 ms"
    ),
    "weak-3g": NetworkClass(
        "weak-3g",
        0.5,
        0.05,
        "weak 3G (cell edge): the HSDPA traces x0.5 (mean 0.70 Mbit/s, 0.11-2.4 Mbit/s), RTT 50 ms",
    ),
}


@dataclass(frozen=True)
class FleetWorld:
    name: str
    description: str
    types: tuple[tuple[str, str], ...]  # (device type, network class), assigned in turn
    fixed_types: bool = False  # the world says how many types (--types does not choose)


WORLDS = {
    "3g": FleetWorld(
        "3g",
        "M devices of K types on their own 3G links (HSDPA traces), one edge",
        tuple((t, "3g") for t in DEVICE_TYPES),
    ),
    "prototype": FleetWorld(
        "prototype",
        "devices of one type (Pi-4 class + VGG16) on WLAN-class "
        "links near one fast edge (the CANS prototype)",
        (("pi4-vgg16", "wlan"),),
        fixed_types=True,
    ),
    "mixed": FleetWorld(
        "mixed",
        "Pi-4 class + VGG16 boards on WLAN and on weak 3G, in turn: "
        "two types that differ only in their network",
        (("pi4-vgg16", "wlan"), ("pi4-vgg16", "weak-3g")),
        fixed_types=True,
    ),
}


def world(name: str) -> FleetWorld:
    if name not in WORLDS:
        raise BadValueError(f"unknown world {name!r}: choose from {', '.join(WORLDS)}")
    return WORLDS[name]


def world_types(name: str, types: int | None = None) -> tuple[tuple[str, str], ...]:
    """The (device type, network) pairs of a world's first ``types`` types (all by default)."""
    w = world(name)
    if types is None or w.fixed_types:
        if w.fixed_types and types not in (None, len(w.types)):
            raise BadValueError(f"the {name} world has {len(w.types)} type(s): drop --types")
        return w.types
    if not 1 <= types <= len(w.types):
        raise BadValueError(f"types must be in 1..{len(w.types)}, got {types}")
    return w.types[:types]


def type_name(device_type: str, network: str, world_name: str) -> str:
    """A type is device class + model + network class (who may share statistics); the 3G
    world keeps the plain names."""
    return device_type if world_name == "3g" else f"{device_type}/{network}"


@lru_cache(maxsize=8)
def network_trace(scale: float = 1.0) -> TraceBandwidth:
    """The shipped HSDPA traces back to back (27 minutes), scaled."""
    names = [n for n in trace_names() if n.startswith("norway_")]
    traces = [TraceBandwidth.from_file(trace_path(n), scale=scale) for n in names]
    return concatenate_traces(traces, "hsdpa" if scale == 1 else f"hsdpa-x{scale:g}")


@lru_cache(maxsize=1)
def _scene_weights() -> tuple[float, ...]:
    weights, _ = key_frame_weights(SyntheticScene(0).frames(KEY_FRAMES))
    return tuple(weights)


def device_type(name: str, display: str | None = None) -> DeviceType:
    if name not in DEVICE_TYPES:
        raise BadValueError(f"unknown device type {name!r}: choose from {', '.join(DEVICE_TYPES)}")
    device, model = DEVICE_TYPES[name]
    setup = zoo_setup(model, device, EDGE_CLASS)
    return DeviceType(display or name, model, setup.model.part, setup.device, setup.edge)


def network_link(net: NetworkClass, offset_s: float, link_scale: float = 1.0) -> Link:
    """A link of class ``net`` heard from ``offset_s`` into its loop (throughputs × scale)."""
    base = network_trace(net.trace_scale * link_scale)
    return Link(shifted_trace(base, offset_s, f"{base.name}+{offset_s:.0f}s"), net.rtt_s)


def fleet_devices(
    devices: int, types: int | None, seed: int, link_scale: float = 1.0, world_name: str = "3g"
) -> list[FleetDevice]:
    """``devices`` devices of ``world_name``, types assigned in turn, each on its network
    class's loop (throughputs × ``link_scale``) from its own random offset, with its own
    stretch of key frames."""
    if devices < 1:
        raise BadValueError(f"a fleet needs at least one device, got {devices}")
    pairs = world_types(world_name, types)
    kinds = [(device_type(t, type_name(t, n, world_name)), NETWORKS[n]) for t, n in pairs]
    rng = np.random.default_rng(seed)
    weights = _scene_weights()
    fleet = []
    for i in range(devices):
        kind, net = kinds[i % len(kinds)]
        offset = float(rng.uniform(0, network_trace(net.trace_scale * link_scale).period))
        start = int(rng.integers(len(weights)))
        link = network_link(net, offset, link_scale)
        fleet.append(FleetDevice(kind, link, weights[start:] + weights[:start]))
    return fleet


def make_experience(device: FleetDevice, seed: int) -> Experience:
    """The device's offline experience: its early-exit model split at the input (the raw
    frame to the edge) and at each exit point in turn, half a trace loop before today's
    stretch of its link, against an edge nobody else was using. Records at the input cut
    matter: a fit of the exits' records alone extrapolates badly to cut 0 (docs/cans.md)."""
    kind = device.kind
    trace = device.link.uplink
    assert isinstance(trace, TraceBandwidth)
    earlier = Link(shifted_trace(trace, trace.period / 2), device.link.rtt_s)
    env = SimEnv(kind.part, kind.device, kind.edge, earlier, constant_load(1.0), NOISE, seed=seed)
    splits = (0, *exit_cuts(kind.part))
    text = f"{trace.name} half a loop earlier, uncontended {kind.edge.name}"
    return collect_experience(
        env, splits, EXPERIENCE_FRAMES, kind.model, kind.device.name, kind.edge.name, text
    )


def build_sim(
    devices: int,
    types: int | None,
    seed: int,
    link_scale: float = 1.0,
    shared_uplink_bps: float | None = None,
    world_name: str = "3g",
) -> FleetSim:
    slots = max(1, math.ceil(devices / DEVICES_PER_SLOT))
    fleet = fleet_devices(devices, types, seed, link_scale, world_name)
    return FleetSim(fleet, slots, shared_uplink_bps, NOISE, seed=seed)


def _save_experiences(
    devices: int,
    types: int | None,
    seed: int,
    folder: Path,
    link_scale: float,
    only_missing: bool,
    world_name: str = "3g",
) -> list[Path]:
    """Every device's experience file, ``folder/device-NNN.json``, made (again, unless
    ``only_missing``) from the fleet of that seed."""
    paths = [folder / f"device-{i:03d}.json" for i in range(devices)]
    if not only_missing or not all(p.exists() for p in paths):
        fleet = fleet_devices(devices, types, seed, link_scale, world_name)
        for i, (path, device) in enumerate(zip(paths, fleet, strict=True)):
            if not (only_missing and path.exists()):
                make_experience(device, seed * 1000 + i).save(path)
    return paths


def experience_files(
    devices: int,
    types: int | None,
    seed: int,
    folder: Path,
    link_scale: float = 1.0,
    world_name: str = "3g",
) -> list[str]:
    """Make every device's offline experience and save it, one JSON file per device."""
    paths = _save_experiences(devices, types, seed, folder, link_scale, False, world_name)
    return [str(p) for p in paths]


def load_or_make_experience(
    devices: int,
    types: int | None,
    seed: int,
    folder: Path,
    link_scale: float = 1.0,
    world_name: str = "3g",
) -> list[Experience]:
    """Each device's experience from ``folder/device-NNN.json``; files that are missing are
    made (and saved) first, so a folder can be filled once and reused."""
    paths = _save_experiences(devices, types, seed, folder, link_scale, True, world_name)
    return [Experience.load(p) for p in paths]
