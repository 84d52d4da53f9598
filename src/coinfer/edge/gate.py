"""Who gets in, decided from a message's header alone, before a byte of its payload is read:
the kind, the token, then for an INFER the model (its fingerprint), the cut, the tensors the
header announces against what that cut sends, and the memory all of it will take — reserved
from the server's one budget, or refused (docs/security.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from coinfer.edge.budget import MemoryBudget
from coinfer.edge.security import TokenCheck
from coinfer.edge.store import ModelStore
from coinfer.wire.messages import Infer
from coinfer.wire.parser import Admission, Head
from coinfer.wire.protocol import ErrorCode, Kind, Limits, ProtocolError
from coinfer.wire.tensors import (
    Expected,
    WireTensor,
    check_tensors,
    decode_bytes,
    payload_bytes,
)


@dataclass(frozen=True)
class InferJob:
    """An admitted INFER: the request, and its tensors' entries checked against the cut."""

    request: Infer
    wires: list[WireTensor]


def _in_cut_order(
    entries: list[dict[str, Any]],
    order: list[int],
    limits: Limits,
    expected: Sequence[Expected],
    what: str,
) -> list[WireTensor]:
    """A v2 request's inputs (in its own order, their bytes so laid out) checked against the
    cut's boundary in the cut's order, each pointing at its own bytes."""
    wires = check_tensors([entries[i] for i in order], limits, expected, what)
    offsets, at = [], 0
    for entry in entries:  # where each input's bytes start, in the request's order
        offsets.append(at)
        at += int(entry["bytes"])
    return [w._replace(offset=offsets[i]) for w, i in zip(wires, order, strict=True)]


class Gate:
    """``admit(head)``: the decision on one message (never raises: a bug of ours is an
    INTERNAL error for that peer, and the server goes on)."""

    def __init__(
        self, store: ModelStore, tokens: TokenCheck, budget: MemoryBudget, limits: Limits
    ) -> None:
        self.store, self.tokens, self.budget, self.limits = store, tokens, budget, limits

    def admit(self, head: Head) -> Admission:
        try:
            return self._admit(head)
        except ProtocolError as exc:
            return Admission(error=exc)
        except Exception as exc:  # a bug of ours: the peer hears of it, the server goes on
            text = f"{type(exc).__name__}: {exc}"
            return Admission(error=ProtocolError(ErrorCode.INTERNAL, text))

    def _admit(self, head: Head) -> Admission:
        kind, header, payload_len = head.kind, head.header, head.payload_len
        if kind in (Kind.RESULT, Kind.ERROR, Kind.PONG):
            raise ProtocolError(ErrorCode.UNSUPPORTED, f"the edge does not take {kind.name}", True)
        if kind is not Kind.INFER and payload_len:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"{kind.name} carries no payload", True)
        if kind is Kind.PING:
            return Admission()
        if not self.tokens.accepts(header.get("token")):
            raise ProtocolError(
                ErrorCode.UNAUTHORIZED, "missing or wrong auth token (--token)", True
            )
        if kind is not Kind.INFER:
            return Admission()  # parsed where it is answered (its header is kept till then)
        v2 = head.protocol == "v2"  # a translated v2 request may name its model only
        request = Infer.parse(header, fingerprint_required=not v2)
        # the same model as the device's, before its tensors are judged by this one's boundary
        if request.fingerprint is not None:
            self.store.check_fingerprint(request.model, request.exit, request.fingerprint)
        expected = self.store.boundary(request.model, request.cut, request.exit)
        what = f"cut {request.cut} of {request.model!r}"
        if v2:
            wires = _in_cut_order(request.tensors, header["order"], self.limits, expected, what)
        else:
            wires = check_tensors(request.tensors, self.limits, expected, what)
        if payload_len != payload_bytes(wires):
            raise ProtocolError(
                ErrorCode.BAD_TENSOR,
                f"the payload has {payload_len} bytes, the tensors claim {payload_bytes(wires)}",
            )
        need = (
            payload_len + decode_bytes(wires) + self.store.reply_bytes(request.model, request.exit)
        )
        if not self.budget.reserve(need):
            raise ProtocolError(
                ErrorCode.BUSY,
                f"the server's memory budget is in use ({self.budget.in_use} of "
                f"{self.budget.limit} bytes): try again later",
            )
        return Admission(
            bytearray(payload_len), need, job=InferJob(request, wires), keep_header=False
        )
