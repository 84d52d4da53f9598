"""The Open Inference Protocol v2 (REST) on the edge (``coinfer serve --http-port``): each
request in the native protocol's terms, so that the one gate admits it (token, model,
fingerprint when given, cut, tensors, budget) and the one compute runs it; and the replies as
HTTP. Health, server and model metadata, model readiness and inference with the binary tensor
extension (names and fields: ``wire.oip``).

A v2 request carries its token as ``Authorization: Bearer TOKEN``; health and server metadata
need none (as a load balancer probes them), everything else does when the server has one. The
fingerprint is the request parameter ``fingerprint`` (hex): a client that sends it (coinfer's
device does) is refused a model of other weights, one that does not (a third-party client)
addresses the model by its name alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import numpy as np

from coinfer import __version__
from coinfer.edge.store import ModelStore
from coinfer.graph.types import BOUNDARY, OUTPUT
from coinfer.output import strict
from coinfer.wire import oip
from coinfer.wire.http import HttpRequest, Translated
from coinfer.wire.protocol import ErrorCode, Kind, Limits, ProtocolError

EXTENSIONS = ["binary_tensor_data"]
REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    409: "Conflict",
    413: "Content Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass(frozen=True)
class V2Call:
    """What a request asked, as its reply needs it: the endpoint, the v2 model name and what it
    names, and an inference request's parsed document."""

    endpoint: str  # live, ready, server, metadata, model_ready, infer, metrics
    name: str | None = None
    model: str | None = None
    cut: int = 0
    exit: int | None = None
    request: oip.V2Request | None = None


def _token(headers: dict[str, str]) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


class V2Routes:
    """``translate(request, json)``: the request in native terms (``wire.http.Translate``)."""

    def __init__(self, store: ModelStore, limits: Limits) -> None:
        self.store, self.limits = store, limits

    def translate(self, request: HttpRequest, body: Any) -> Translated:
        path = request.target.split("?", 1)[0]
        parts = [unquote(p) for p in path.strip("/").split("/")]
        token = _token(request.headers)
        if parts == ["metrics"]:  # Prometheus: the token when the server has one
            self._method(request, "GET")
            return Translated(Kind.STATS, {"id": None, "token": token}, context=V2Call("metrics"))
        if parts[:1] != ["v2"]:
            raise ProtocolError(ErrorCode.UNSUPPORTED, f"no endpoint {path!r} (this is /v2)")
        rest = parts[1:]
        if rest in ([], ["health", "live"], ["health", "ready"]):
            self._method(request, "GET")
            endpoint = "server" if not rest else rest[1]
            return Translated(Kind.PING, {"id": None}, context=V2Call(endpoint))
        if len(rest) < 2 or rest[0] != "models":
            raise ProtocolError(ErrorCode.UNSUPPORTED, f"no endpoint {path!r}")
        name, tail = rest[1], rest[2:]
        if tail[:1] == ["versions"]:
            if len(tail) < 2 or tail[1] != oip.VERSION:
                raise ProtocolError(
                    ErrorCode.UNKNOWN_MODEL, f"{name!r} has version {oip.VERSION} only"
                )
            tail = tail[2:]
        model, cut, exit = self._resolve(name)
        if tail == ["infer"]:
            self._method(request, "POST")
            return self._infer(name, model, cut, exit, body, token)
        if tail in ([], ["ready"]):
            self._method(request, "GET")
            endpoint = "model_ready" if tail else "metadata"
            call = V2Call(endpoint, name, model, cut, exit)
            return Translated(Kind.STATS, {"id": None, "token": token}, context=call)
        raise ProtocolError(ErrorCode.UNSUPPORTED, f"no endpoint {path!r}")

    @staticmethod
    def _method(request: HttpRequest, wanted: str) -> None:
        if request.method != wanted:
            raise ProtocolError(
                ErrorCode.UNSUPPORTED, f"{request.method} {request.target}: use {wanted}"
            )

    def _resolve(self, name: str) -> tuple[str, int, int | None]:
        model, cut, exit = oip.parse_v2_name(name)
        self.store.boundary(model, cut, exit)  # UNKNOWN_MODEL or BAD_CUT, named
        return model, cut, exit

    def _infer(
        self, name: str, model: str, cut: int, exit: int | None, body: Any, token: str | None
    ) -> Translated:
        request = oip.parse_request(body, self.limits)
        wanted = [BOUNDARY + b for b in self.store.path(model, exit).cuts[cut].boundary]
        given = [
            i.name if i.name.startswith(BOUNDARY) else BOUNDARY + i.name for i in request.inputs
        ]
        if sorted(given) != sorted(wanted):
            raise ProtocolError(
                ErrorCode.BAD_TENSOR,
                f"{name} takes the inputs {', '.join(wanted)}, not {', '.join(given)}",
            )
        binary = [i.binary_bytes is not None for i in request.inputs]
        if any(binary) and not all(binary):
            raise ProtocolError(
                ErrorCode.BAD_TENSOR, "give every input binary, or every one as data"
            )
        entries = []
        inline = []
        for i in request.inputs:
            size = i.binary_bytes if i.data is None else i.data.nbytes
            entries.append({"dtype": i.dtype, "shape": i.shape, "bytes": size})
            if i.data is not None:
                inline.append(i.data.tobytes())
        fingerprint = request.parameters.get("fingerprint")
        try:
            fp = None if fingerprint is None else bytes.fromhex(fingerprint)
        except (TypeError, ValueError):
            raise ProtocolError(
                ErrorCode.BAD_HEADER, "the parameter 'fingerprint' must be hex"
            ) from None
        header = {
            "id": None,
            "model": model,
            "cut": cut,
            "exit": exit,
            "fp": fp,
            "tensors": entries,
            "order": [given.index(w) for w in wanted],  # cut order: the JSON's input indexes
            "token": token,
        }
        call = V2Call("infer", name, model, cut, exit, request)
        return Translated(Kind.INFER, header, b"".join(inline) or None, context=call)

    # -- replies
    def metadata(self, call: V2Call) -> dict[str, Any]:
        assert call.model is not None
        path = self.store.path(call.model, call.exit)
        inputs = [
            {"name": BOUNDARY + n, "datatype": oip.DATATYPES[m.dtype_name], "shape": list(m.shape)}
            for n, m in zip(
                path.cuts[call.cut].boundary,
                self.store.boundary(call.model, call.cut, call.exit),
                strict=True,
            )
        ]
        outputs = [
            {"name": OUTPUT + n, "datatype": oip.DATATYPES[m.dtype_name], "shape": list(m.shape)}
            for n, m in zip(path.output_names, path.outputs, strict=True)
        ]
        fingerprint = self.store.fingerprint(call.model, call.exit)
        return {
            "name": call.name,
            "versions": [oip.VERSION],
            "platform": "coinfer",
            "inputs": inputs,
            "outputs": outputs,
            "parameters": {"fingerprint": fingerprint.hex()},
        }

    def answer(self, call: V2Call) -> bytes:
        """The reply to a request that runs no model."""
        if call.endpoint == "server":
            doc: dict[str, Any] = {
                "name": "coinfer",
                "version": __version__,
                "extensions": EXTENSIONS,
            }
        elif call.endpoint in ("live", "ready"):
            doc = {call.endpoint: True}
        elif call.endpoint == "model_ready":
            doc = {"name": call.name, "ready": True}
        else:
            doc = self.metadata(call)
        return json_response(200, doc)

    def infer_reply(
        self, call: V2Call, outputs: list[np.ndarray], edge_s: float
    ) -> list[bytes | memoryview]:
        assert call.model is not None
        names = [OUTPUT + n for n in self.store.path(call.model, call.exit).output_names]
        text, blobs, json_len = oip.response(
            str(call.name), call.request, names, outputs, {"edge_s": edge_s}
        )
        headers = {"content-type": "application/json"}
        if json_len is not None:
            headers = {
                "content-type": "application/octet-stream",
                oip.HEADER_LENGTH: str(json_len),
            }
        size = len(text) + sum(b.nbytes for b in blobs)
        return [_head(200, size, headers), text, *blobs]


def _head(status: int, length: int, headers: dict[str, str], close: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}", f"content-length: {length}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if close:
        lines.append("connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def text_response(body: bytes, content_type: str) -> bytes:
    return _head(200, len(body), {"content-type": content_type}) + body


def json_response(status: int, doc: Any, close: bool = False) -> bytes:
    body = json.dumps(strict(doc), allow_nan=False, separators=(",", ":")).encode()
    return _head(status, len(body), {"content-type": "application/json"}, close) + body


def error_response(error: ProtocolError) -> bytes:
    """An error as the protocol has it: its HTTP status and ``{"error": text}`` (the
    connection closed after it when framing is lost)."""
    status = oip.HTTP_STATUS.get(error.code, 500)
    if error.code is ErrorCode.UNSUPPORTED and "use " in str(error):
        status = 405
    return json_response(status, {"error": str(error)}, close=error.fatal)
