"""How long, and how much energy? Host timing set-up (profilers and device models build on it)."""

from coinfer.latency.host import configure_host, steady_allocator

__all__ = ["configure_host", "steady_allocator"]
