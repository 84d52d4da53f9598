"""The edge's side of the federation (``coinfer serve --federation``): every group's statistics,
bounded in number and size — at most ``max_groups`` groups of at most ``wire.sync.MAX_DIM``
features (a few KiB each); a SYNC for a group beyond them is refused BUSY. The messages and
their checks: ``wire.sync``."""

from __future__ import annotations

from dataclasses import dataclass

from coinfer.wire.protocol import ErrorCode, ProtocolError
from coinfer.wire.sync import Sums, Sync, SyncReply

DEFAULT_MAX_GROUPS = 64


@dataclass
class _GroupSums:
    dim: int
    online: Sums
    experience: Sums
    syncs: int = 0


class GroupStore:
    """The edge's statistics of every group, bounded in number and size."""

    def __init__(self, max_groups: int = DEFAULT_MAX_GROUPS) -> None:
        if max_groups < 1:
            raise ValueError(f"--max-groups must be at least 1, got {max_groups}")
        self.max_groups = max_groups
        self.groups: dict[str, _GroupSums] = {}

    def sync(self, delta: Sync) -> SyncReply:
        """Add a delta to its group (made on first use) and answer with the group's sums."""
        found = self.groups.get(delta.group)
        if found is None:
            if len(self.groups) >= self.max_groups:
                raise ProtocolError(
                    ErrorCode.BUSY,
                    f"the server keeps {self.max_groups} groups, all in use: join one of them",
                )
            found = _GroupSums(delta.dim, Sums.zero(delta.dim), Sums.zero(delta.dim))
            self.groups[delta.group] = found
        elif found.dim != delta.dim:
            raise ProtocolError(
                ErrorCode.BAD_HEADER,
                f"SYNC: group {delta.group!r} has {found.dim} features, not {delta.dim}",
            )
        found.online.add(delta.online)
        found.experience.add(delta.experience)
        found.syncs += 1
        return SyncReply(
            delta.group, found.dim, found.online, found.experience, found.syncs, delta.id
        )

    def describe(self) -> dict[str, dict[str, int]]:
        return {
            name: {
                "dim": g.dim,
                "count": g.online.count,
                "experience": g.experience.count,
                "syncs": g.syncs,
            }
            for name, g in self.groups.items()
        }
