"""The live runtime: the wire protocol, the edge server, the device client (DESIGN §5).

The Python API (docs/deploy.md shows each in use)::

    from coinfer.runtime import EdgeServer, ModelStore, DeviceClient, LiveEnv, preflight

- ``ModelStore([ModelSpec(...), "vgg16"])`` and ``EdgeServer(store, token=...)``: serve back
  halves (``await server.start(host, port)``, ``await server.close()``).
- ``DeviceClient(model, part, front_s, (host, port), link=None, token=...)``: run frames
  (``await client.frame(i, inputs, Action(cut))``), every reply checked, fallback on failure.
- ``LiveEnv(client, inputs)``: the device side as an Environment for ``policies.loop``.
- ``preflight(client, example)``: reachability, token, model and fingerprint, RTT and uplink.
- ``runs.run_frames(setup, policy, frames, link, Connection(...))``: what ``coinfer run`` does.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "EdgeServer": "coinfer.runtime.server",
    "ServerOptions": "coinfer.runtime.server",
    "ModelStore": "coinfer.runtime.store",
    "DeviceClient": "coinfer.runtime.client",
    "FrameRecord": "coinfer.runtime.client",
    "LiveEnv": "coinfer.runtime.device_env",
    "LiveStageEnv": "coinfer.runtime.stage_env",
    "preflight": "coinfer.runtime.preflight",
    "PreflightError": "coinfer.runtime.preflight",
    "Connection": "coinfer.runtime.runs",
    "run_frames": "coinfer.runtime.runs",
    "ResultWriter": "coinfer.runtime.results",
    "Frames": "coinfer.runtime.inputs",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Imported on first use: ``coinfer.runtime.protocol`` alone stays light."""
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'coinfer.runtime' has no attribute {name!r}")
