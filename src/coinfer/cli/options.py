"""Every option of every command, declared once: a flag means one thing in every command that
takes it (its default is the command's). ``--edge`` is always an edge server's HOST:PORT; an
edge's latency model is ``--edge-class``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# -- the model
ModelArgument = Annotated[
    str, typer.Argument(help="A zoo name (coinfer models), torchvision:NAME or module:factory.")
]
Models = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help="A zoo name (coinfer models), torchvision:NAME or module:factory (serve: "
        "repeatable, one per model served).",
    ),
]
InputShapes = Annotated[
    list[str] | None,
    typer.Option(
        "--input-shape",
        "-i",
        help="Input shape like 1,3,224,224 (or 1,16:int64), once per forward argument "
        "(MODEL@SHAPE for one of several models). Default: the zoo's, or what the factory "
        "declares (factory.example_inputs).",
    ),
]
ModelArgs = Annotated[
    list[str] | None,
    typer.Option(
        "--model-arg",
        "-a",
        help="A keyword argument of the model factory, KEY=VALUE (repeatable; MODEL@KEY=VALUE "
        "for one of several models; the value is read as a Python literal: 32, 0.5, True, "
        "(3, 5), else a string).",
    ),
]
Weights = Annotated[
    list[str] | None,
    typer.Option(
        "--weights",
        help="Trained weights: a state_dict saved with torch.save(model.state_dict(), FILE), "
        "or a .safetensors file (MODEL@FILE for one of several models). Device and edge must "
        "load the same (the edge checks).",
    ),
]
Granularity = Annotated[
    str,
    typer.Option(
        "--granularity",
        "-g",
        help="layer: cut between top-level layers (the papers' partition points); node: cut "
        "after every traced op.",
    ),
]
Leaf = Annotated[
    list[str] | None,
    typer.Option(
        "--leaf",
        help="A submodule to keep whole, for code torch.fx cannot trace: its qualified name "
        "(gate, layer1.0) or class name (Gate); repeatable, MODEL@NAME for one model. The edge "
        "must be served with the same --leaf.",
    ),
]

# -- the device, the edge and the link
DEVICE = typer.Option(
    "--device",
    help="The device class: host (this machine as it is), host/N (N times slower), rpi3 or "
    "edge-pc (Edgent's published regressions), edge-pc/N, fit:FILE (coinfer profile). A live "
    "run pads each front to the class's predicted time.",
)
Device = Annotated[str, DEVICE]
DeviceOrDefault = Annotated[str | None, DEVICE]  # None: the command's own (a demo's system's)
EdgeClass = Annotated[
    str, typer.Option("--edge-class", help="The edge's class (as --device): its latency model.")
]
Edge = Annotated[str, typer.Option("--edge", help="The edge server, HOST:PORT.")]
EdgeArgument = Annotated[str, typer.Argument(help="The edge server, HOST:PORT.")]
Bandwidth = Annotated[
    str | None,
    typer.Option(
        "--bandwidth",
        "-b",
        help="Uplink bandwidth: 5mbps, 10Mbit/s, 10M (bits) or 2MB/s (bytes); a live run shapes "
        "a constant link to it.",
    ),
]
Rtt = Annotated[
    str | None, typer.Option("--rtt", help="Round-trip time: 20ms, 0.02s (a live run adds it).")
]
Trace = Annotated[
    str | None,
    typer.Option(
        "--trace",
        help="A bandwidth trace: a shipped name (norway_bus_1 ...) or a file (HSDPA "
        "'time<TAB>Mbit/s', or CSV with time_s and mbps columns).",
    ),
]
TraceScale = Annotated[
    float, typer.Option("--trace-scale", min=0.0001, help="Multiply the trace's throughput.")
]
Slowdown = Annotated[
    float,
    typer.Option(
        "--slowdown",
        min=1.0,
        max=1000.0,
        help="How many times slower the edge is than this host (serve: from the start; demo "
        "ans: from halfway).",
    ),
]

# -- what runs
Policy = Annotated[
    str,
    typer.Option(
        "--policy",
        "-p",
        help="A policy (coinfer policies lists them, and the worlds each runs in); simulate and "
        "fleet take several, comma-separated, or all.",
    ),
]
Frames = Annotated[
    int,
    typer.Option(
        "--frames",
        "-n",
        min=1,
        help="Frames to run (tasks, stage by stage); run --images: one pass over the folder.",
    ),
]
Seed = Annotated[int, typer.Option("--seed", help="Seeds the frames, noise, links and channel.")]
LatencyReq = Annotated[
    str | None, typer.Option("--latency-req", help="Edgent's latency requirement (100ms).")
]
Channel = Annotated[
    str | None,
    typer.Option(
        "--channel",
        help="rayleigh or rician block fading: decide stage by stage (the stopping rules; "
        "edge-only, device-only, fixed-K as their baselines).",
    ),
]
SnrDb = Annotated[float, typer.Option("--snr-db", help="Stopping: the mean SNR (dB).")]
TimeWeight = Annotated[
    float, typer.Option("--time-weight", min=0.0, help="Stopping: w in energy + w·time.")
]
Video = Annotated[
    Path | None,
    typer.Option("--video", help="Frames from this video file (simulate: their SSIM key frames)."),
]
Learner = Annotated[
    str,
    typer.Option(
        "--learner",
        help="Federated policies: paper (μLinUCB on the 7 ANS features) or link (+ the "
        "link feature).",
    ),
]
Experience = Annotated[
    Path | None,
    typer.Option(
        "--experience",
        help="Offline experience (coinfer-experience/1 JSON) a warm-started federated policy "
        "adds to its group (fleet: a folder of device-NNN.json; missing files are made there).",
    ),
]

# -- who may talk to whom
Token = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="The auth token (visible in ps: prefer --token-file or COINFER_TOKEN).",
    ),
]
TokenFile = Annotated[
    Path | None, typer.Option("--token-file", help="Read the auth token from this file.")
]
TlsCa = Annotated[
    Path | None,
    typer.Option("--tls-ca", help="Connect with TLS, trusting the CA in this PEM file."),
]
Tls = Annotated[bool, typer.Option("--tls", help="Connect with TLS, trusting the system's CAs.")]

Protocol = Annotated[
    str,
    typer.Option(
        "--protocol",
        help="native (coinfer's wire) or v2: the KServe Open Inference Protocol (REST, binary "
        "tensors) to any v2 server holding the back halves (coinfer serve --http-port, or "
        "KServe/Triton serving the exported backs). An http(s):// --edge means v2.",
    ),
]
Bundle = Annotated[
    Path | None,
    typer.Option(
        "--bundle",
        help="A folder coinfer export wrote. run: this device runs its fronts in ONNX Runtime "
        "with no torch installed (pip install 'coinfer[device]'), falls back on the bundle's "
        "back half or whole model, runs every frame-by-frame policy (Edgent's exits too); no -m "
        "with it, default inputs are seeded arrays of its shapes. plan --device host: the "
        "fronts are timed in ONNX Runtime here, the edge staying torch.",
    ),
]

# -- what is written
Json = Annotated[bool, typer.Option("--json", help="Print strict JSON for scripts.")]
Out = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Where the results go: a folder (simulate, demo, experiment; export: the bundle) "
        "or a file (run: one JSON line per frame; profile: the fit).",
    ),
]

# -- coinfer run's own
Codec = Annotated[str, typer.Option("--codec", help="Compress the boundary: none, lz4 or zstd.")]
Quant = Annotated[str, typer.Option("--quant", help="Quantise the boundary: none, fp16 or int8.")]
EdgeTimeout = Annotated[
    float,
    typer.Option(
        "--edge-timeout",
        min=0.01,
        help="Seconds from the end of an upload to the whole reply before the device finishes "
        "the frame itself.",
    ),
]
Log = Annotated[
    Path | None, typer.Option("--log", help="Write one JSON line per frame (timings only).")
]
Images = Annotated[
    Path | None,
    typer.Option("--images", help="Frames from the images in this folder, in name order."),
]
InputsFile = Annotated[
    Path | None,
    typer.Option(
        "--inputs",
        help="Frames from recorded inputs: a .npz or .safetensors file, one array per forward "
        "argument (named as it, or arr_0, arr_1...), the first axis the frames.",
    ),
]
Camera = Annotated[
    str | None,
    typer.Option("--camera", help="Frames from a camera, e.g. /dev/video0 (PyAV, V4L2)."),
]
Strict = Annotated[
    bool, typer.Option("--strict", help="Exit 3 if any frame fell back to the device.")
]
NoPreflight = Annotated[
    bool,
    typer.Option(
        "--no-preflight",
        help="Start without checking the edge first (every frame then falls back while it is "
        "down).",
    ),
]
Group = Annotated[
    str | None,
    typer.Option(
        "--group",
        help="A federated policy's group on the edge (devices of one type share one; the edge "
        "runs coinfer serve --federation).",
    ),
]
