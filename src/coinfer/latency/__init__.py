"""How long, and how much energy? Host timing set-up (profilers and device models build on it).

``configure_host`` (torch's threads) loads on first use: links and device classes import
without torch."""

from __future__ import annotations

from typing import TYPE_CHECKING

from coinfer.lazy import lazy_names

if TYPE_CHECKING:
    from coinfer.latency.host import configure_host, steady_allocator

__all__ = ["configure_host", "steady_allocator"]
__getattr__ = lazy_names("coinfer.latency", dict.fromkeys(__all__, "coinfer.latency.host"))
