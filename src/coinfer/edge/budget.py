"""The server's memory budget: one total for everything peers make it hold, across connections.

Every byte a message makes the server allocate — its header while it is read, its payload,
decompressed and dequantised copies, the reply until the kernel has taken it — is reserved here
first; what does not fit is refused (BUSY) without being read. The budget is used from the event
loop only, so it needs no lock. Once a burst is over (nothing held, and a lot held since the last
time), the server hands freed memory back to the OS (``trim_due``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MIB = 1024 * 1024
DEFAULT_BUDGET_BYTES = 1024 * MIB  # far below this 24 GiB machine, far above any zoo model's need
TRIM_AFTER_BYTES = 32 * MIB  # give memory back once at least this much was held since last time


@dataclass
class MemoryBudget:
    limit: int = DEFAULT_BUDGET_BYTES
    in_use: int = 0
    peak: int = 0
    refused: int = 0  # reservations that did not fit
    _held_since_trim: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.limit <= 0:
            raise ValueError(f"the memory budget must be positive, got {self.limit} bytes")

    def reserve(self, nbytes: int) -> bool:
        """Hold ``nbytes`` if they fit in what is left; False (and nothing held) if not."""
        if nbytes < 0:
            raise ValueError(f"cannot reserve {nbytes} bytes")
        if self.in_use + nbytes > self.limit:
            self.refused += 1
            return False
        self.in_use += nbytes
        self.peak = max(self.peak, self.in_use)
        self._held_since_trim = max(self._held_since_trim, self.in_use)
        return True

    def release(self, nbytes: int) -> None:
        self.in_use = max(0, self.in_use - nbytes)

    def trim_due(self) -> bool:
        """True once per burst: nothing is held now, and enough was held since the last trim
        that giving it back to the OS is worth the allocator's walk over its heap."""
        if self.in_use or self._held_since_trim < TRIM_AFTER_BYTES:
            return False
        self._held_since_trim = 0
        return True

    def summary(self) -> dict[str, int]:
        return {
            "limit_bytes": self.limit,
            "in_use_bytes": self.in_use,
            "peak_bytes": self.peak,
            "refused": self.refused,
        }


def process_memory(pid: int | str = "self") -> dict[str, int]:
    """Resident and peak resident memory of a process in bytes (Linux /proc; {} elsewhere)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out["rss_bytes" if key == "VmRSS" else "peak_rss_bytes"] = int(value.split()[0]) * 1024
    return out


def reset_peak_memory(pid: int | str = "self") -> bool:
    """Restart a process's peak-RSS count from its current RSS (Linux clear_refs; False where
    that is not allowed)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True
