"""Failed logins slowed down per source address, with back-off: a token cannot be guessed at
the speed of a loopback socket, and a flood of wrong tokens from one address does not touch
devices connecting from another.

While an address is blocked its logins are refused without looking at the token (a right
guess then would tell the guesser it was right, and the block would slow nothing down).
Connections that are already past the token keep working: only strangers are held back.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass

FREE_FAILURES = 5  # wrong tokens an address may send before it is slowed down
FIRST_BLOCK_S = 0.5  # then blocked this long, doubling with every further failure...
MAX_BLOCK_S = 60.0  # ...up to this
FORGET_AFTER_S = 600.0  # an address quiet this long starts afresh
MAX_SOURCES = 4096  # addresses remembered at most (the longest quiet are forgotten first)


@dataclass
class _Record:
    failures: int = 0
    blocked_until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    """``blocked(source)``: seconds its logins are still refused for (0: none);
    ``failed(source)``: a wrong token came from it."""

    def __init__(self) -> None:
        self._sources: collections.OrderedDict[str, _Record] = collections.OrderedDict()

    def blocked(self, source: str) -> float:
        record = self._sources.get(source)
        if record is None:
            return 0.0
        now = time.monotonic()
        if now - record.last > FORGET_AFTER_S:
            del self._sources[source]
            return 0.0
        return max(0.0, record.blocked_until - now)

    def failed(self, source: str) -> None:
        now = time.monotonic()
        record = self._sources.pop(source, None)
        if record is None or now - record.last > FORGET_AFTER_S:
            record = _Record()
        record.failures += 1
        record.last = now
        beyond = record.failures - FREE_FAILURES
        if beyond > 0:
            block = min(MAX_BLOCK_S, FIRST_BLOCK_S * 2.0 ** min(beyond - 1, 32))
            record.blocked_until = now + block
        self._sources[source] = record  # the most recent last
        while len(self._sources) > MAX_SOURCES:
            self._sources.popitem(last=False)

    def __len__(self) -> int:
        return len(self._sources)
