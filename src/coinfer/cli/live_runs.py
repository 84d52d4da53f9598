"""The frames and the stages of ``coinfer run``: the inputs, the one loop against the edge
(each frame's outputs to ``--out``), the preflight of a stage-wise run, and their summaries."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

from coinfer.apps.live import RunConfig, run_live
from coinfer.assembly import DeviceSetup
from coinfer.cli.common import interruption_said, progress_bars, stage, user_errors
from coinfer.device.client import ClientOptions
from coinfer.device.endpoint import Endpoint
from coinfer.device.inputs import frames_for
from coinfer.device.records import FrameRecord, write_log
from coinfer.device.results import ResultWriter
from coinfer.device.session import preflight_edge
from coinfer.output import SCHEMA


def run_stages_doc(
    config: RunConfig, setup: DeviceSetup, edge: Endpoint, options: ClientOptions
) -> dict[str, Any]:
    """Stage by stage (optimal stopping): the preflight, then the tasks."""
    from coinfer.systems.stopping.live import run_stages  # torch's segments

    found = preflight_edge(setup, edge, options) if config.preflight else None
    with progress_bars() as report:
        staged = run_stages(
            setup,
            config.policy,
            config.frames,
            edge,
            options=options,
            channel=config.channel or "rayleigh",
            snr_db=config.snr_db,
            time_weight=config.time_weight,
            seed=config.seed,
            on_task=lambda r: report("tasks", r.task + 1, config.frames),
        )
    doc = {"schema": SCHEMA, **staged.summary}
    if found is not None:
        doc["preflight"] = {"rtt_s": found.rtt_s, "uplink_bps": found.uplink_bps}
    return doc


def run_frames_doc(
    config: RunConfig,
    setup: DeviceSetup,
    edge: Endpoint,
    options: ClientOptions,
    out_file: Path | None,
    log: Path | None,
) -> dict[str, Any]:
    """Frame by frame: the inputs, the run (each frame's outputs to ``out_file``), the log."""
    with user_errors(setup.model.name):
        camera = config.camera
        capture = (
            stage(f"capturing {config.frames} frames from {camera}") if camera else (nullcontext())
        )
        with capture:
            data = frames_for(
                setup.model,
                config.frames,
                config.seed,
                config.video,
                config.images,
                camera,
                config.inputs_file,
            )
    writing = ResultWriter.for_setup(out_file, setup, data.sources) if out_file else nullcontext()
    finished = [0]

    def on_frame(record: FrameRecord) -> None:
        finished[0] = record.frame + 1
        report("frames", record.frame + 1, config.frames)

    said = interruption_said(config.frames, finished, out_file)
    with said, progress_bars() as report, writing as writer:
        done = run_live(
            config,
            setup,
            edge,
            data,
            options,
            on_frame=on_frame,
            on_output=writer.write if writer is not None else None,
        )
    if log is not None:
        write_log(done.records, log)
    return {
        "schema": SCHEMA,
        "config": {"inputs": data.origin},
        "model": setup.model.name,
        "policy": config.policy,
        "edge": config.edge,
        **done.summary,
    }
