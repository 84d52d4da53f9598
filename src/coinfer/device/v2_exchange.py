"""One offload over the Open Inference Protocol v2 (REST, binary tensors) to any v2 server
holding the back halves — coinfer's edge (``serve --http-port``) or a KServe/MLServer/Triton
deployment of exported backs (names: ``wire.oip``). The reply is trusted no more than a native
one: a success status, at most the size the model's outputs can take, exactly the model's
outputs (names, datatypes, shapes; the bytes decoded by the native wire's own checks), and an
edge time the device could have waited for — the server's ``edge_s`` when it reports one, else
the wait from the end of the upload to the reply."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import h11
import numpy as np

from coinfer.arrays import NUMPY_DTYPES
from coinfer.graph.types import BOUNDARY, OUTPUT, CutTable, TensorMeta
from coinfer.wire import oip
from coinfer.wire.http import HEAD_BYTES
from coinfer.wire.protocol import ErrorCode, Limits, ProtocolError
from coinfer.wire.tensors import decode_tensors, raw_bytes

if TYPE_CHECKING:
    from coinfer.device.endpoint import Endpoint

EDGE_TIME_SLACK_S = 0.005  # what a server's clock may be ahead of ours, as natively
JSON_BYTES_PER_VALUE = 32  # an output given as JSON numbers: at most this much text per value
READ_BYTES = 256 * 1024
STATUS_CODES = {s: c for c, s in oip.HTTP_STATUS.items()}


def infer_request(
    path: CutTable,
    model: str,
    cut: int,
    exit: int | None,
    arrays: Sequence[np.ndarray],
    host: str,
    token: str | None,
) -> tuple[bytes, list[memoryview]]:
    """The request's head and JSON, and the tensors' bytes that follow them."""
    names = path.cuts[cut].boundary
    inputs, blobs = [], []
    for name, given in zip(names, arrays, strict=True):
        a = np.ascontiguousarray(given)
        raw = raw_bytes(a)
        inputs.append(
            {
                "name": BOUNDARY + name,
                "shape": list(a.shape),
                "datatype": oip.DATATYPES[a.dtype.name],
                "parameters": {"binary_data_size": raw.nbytes},
            }
        )
        blobs.append(raw)
    doc = {
        "inputs": inputs,
        "outputs": [
            {"name": OUTPUT + n, "parameters": {"binary_data": True}} for n in path.output_names
        ],
        "parameters": {"fingerprint": path.fingerprint.hex()},
    }
    text = json.dumps(doc, separators=(",", ":")).encode()
    body = len(text) + sum(b.nbytes for b in blobs)
    headers = [
        ("host", host),
        ("content-type", "application/octet-stream"),
        ("content-length", str(body)),
        (oip.HEADER_LENGTH, str(len(text))),
    ]
    if token is not None:
        headers.append(("authorization", f"Bearer {token}"))
    target = f"/v2/models/{oip.v2_name(model, cut, exit)}/infer"
    head = request_head("POST", target, headers)
    return head + text, blobs


def request_head(method: str, target: str, headers: list[tuple[str, str]]) -> bytes:
    """A request's line and headers as h11 writes them."""
    writer = h11.Connection(h11.CLIENT)
    data = writer.send(h11.Request(method=method, target=target, headers=headers))
    return data or b""


async def read_response(
    reader: asyncio.StreamReader, max_body: int
) -> tuple[int, dict[str, str], bytes]:
    """A response's status, headers (lower-cased) and body (at most ``max_body`` bytes, by
    Content-Length or chunked: h11 frames it)."""
    parser = h11.Connection(h11.CLIENT, max_incomplete_event_size=HEAD_BYTES)
    parser.send(h11.Request(method="POST", target="/", headers=[("host", "x")]))
    status, headers, body = 0, {}, bytearray()
    while True:
        try:
            event = parser.next_event()
        except h11.RemoteProtocolError as exc:
            raise ProtocolError(ErrorCode.BAD_FRAME, f"not an HTTP response: {exc}") from None
        if event is h11.NEED_DATA:
            data = await reader.read(READ_BYTES)
            if not data and parser.their_state is not h11.SEND_BODY:
                raise ConnectionError("the server closed the connection")
            parser.receive_data(data)
        elif isinstance(event, h11.Response):
            status = event.status_code
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers}
            announced = int(headers.get("content-length", "0") or 0)
            if announced > max_body:
                raise ProtocolError(
                    ErrorCode.TOO_LARGE,
                    f"a response of {announced} bytes: the outputs take at most {max_body}",
                )
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > max_body:
                raise ProtocolError(
                    ErrorCode.TOO_LARGE, f"a response beyond {max_body} bytes (the outputs' most)"
                )
        elif isinstance(event, h11.EndOfMessage):
            return status, headers, bytes(body)
        elif isinstance(event, h11.ConnectionClosed):
            raise ConnectionError("the server closed the connection mid-response")


def max_response_bytes(outputs: Sequence[TensorMeta]) -> int:
    """The most a response with these outputs may take, binary or as JSON numbers."""
    values = sum(m.numel for m in outputs)
    return 64 * 1024 + max(sum(m.nbytes for m in outputs), JSON_BYTES_PER_VALUE * values)


def check_response(
    status: int,
    headers: dict[str, str],
    body: bytes,
    path: CutTable,
    limits: Limits,
    waited_s: float,
) -> tuple[list[np.ndarray], float]:
    """The outputs, in the model's order, and the edge time of a v2 response; ProtocolError
    naming what is wrong otherwise (an error status is the server's error)."""
    json_len = len(body)
    if oip.HEADER_LENGTH in headers:
        text = headers[oip.HEADER_LENGTH]
        if not text.isdigit() or int(text) > len(body):
            raise ProtocolError(ErrorCode.BAD_HEADER, f"{oip.HEADER_LENGTH} {text!r}")
        json_len = int(text)
    try:
        doc = json.loads(body[:json_len])
    except (ValueError, RecursionError):
        doc = None
    if status != 200:
        said = doc.get("error") if isinstance(doc, dict) else None
        code = STATUS_CODES.get(status, ErrorCode.INTERNAL)
        raise ProtocolError(code, f"HTTP {status}: {str(said or body[:200])[:300]}")
    if not isinstance(doc, dict) or not isinstance(doc.get("outputs"), list):
        raise ProtocolError(ErrorCode.BAD_HEADER, "a response without 'outputs'")
    by_name: dict[str, Any] = {}
    for out in doc["outputs"]:
        if isinstance(out, dict) and isinstance(out.get("name"), str):
            by_name[out["name"]] = out
    wanted = [OUTPUT + n for n in path.output_names]
    if sorted(by_name) != sorted(wanted) or len(doc["outputs"]) != len(wanted):
        raise ProtocolError(
            ErrorCode.BAD_TENSOR, f"the outputs {sorted(by_name)}, not the model's {wanted}"
        )
    arrays = _outputs(doc["outputs"], wanted, path.outputs, body[json_len:], limits)
    params = doc.get("parameters")
    reported = params.get("edge_s") if isinstance(params, dict) else None
    if reported is None:
        return arrays, waited_s
    slack = EDGE_TIME_SLACK_S + 0.01 * waited_s
    real = isinstance(reported, (int, float)) and not isinstance(reported, bool)
    if not (real and math.isfinite(reported) and 0.0 <= reported <= waited_s + slack):
        raise ProtocolError(
            ErrorCode.BAD_HEADER,
            f"impossible edge_s {reported!r}: the reply came {waited_s:.4f} s after the upload",
        )
    return arrays, float(reported)


def _outputs(
    given: list[dict[str, Any]],
    wanted: list[str],
    metas: Sequence[TensorMeta],
    binary: bytes,
    limits: Limits,
) -> list[np.ndarray]:
    """Each output checked against the model's (binary ones by the native wire's decoder)."""
    entries, offsets, at = [], [], 0
    for out in given:  # the binary parts lie in the response's order
        size = out.get("parameters", {}).get("binary_data_size") if "data" not in out else None
        dtype = oip.FROM_DATATYPE.get(out.get("datatype"))  # type: ignore[arg-type]
        entries.append((out, size, dtype))
        offsets.append(at)
        at += size if isinstance(size, int) and size >= 0 else 0
    if at != len(binary):
        raise ProtocolError(ErrorCode.BAD_TENSOR, f"{len(binary)} binary bytes, outputs claim {at}")
    result = []
    for name, meta in zip(wanted, metas, strict=True):
        index = next(i for i, (o, _, _) in enumerate(entries) if o["name"] == name)
        out, size, dtype = entries[index]
        if isinstance(size, int):
            entry = {"dtype": dtype, "shape": out.get("shape"), "bytes": size}
            chunk = binary[offsets[index] : offsets[index] + size]
            (array,) = decode_tensors([entry], chunk, limits, [meta], "the device's model")
        else:
            array = _json_output(name, out, meta)
        result.append(array)
    return result


def _json_output(name: str, out: dict[str, Any], meta: TensorMeta) -> np.ndarray:
    data, shape = out.get("data"), out.get("shape")
    if shape != list(meta.shape) or out.get("datatype") != oip.DATATYPES[meta.dtype_name]:
        raise ProtocolError(
            ErrorCode.BAD_TENSOR,
            f"{name}: {out.get('datatype')} {shape}, the model gives "
            f"{oip.DATATYPES[meta.dtype_name]} {list(meta.shape)}",
        )
    values = np.asarray(data, dtype=np.float64 if meta.dtype_name.startswith("float") else None)
    if values.size != meta.numel or values.dtype == object:
        raise ProtocolError(ErrorCode.BAD_TENSOR, f"{name}: {values.size} values")
    return values.reshape(meta.shape).astype(NUMPY_DTYPES[meta.dtype_name])


async def v2_gets(
    endpoint: Endpoint, targets: Sequence[str], timeout_s: float
) -> list[tuple[float, int, Any]]:
    """GETs of ``targets`` on one connection: each one's round trip, status and JSON."""
    from coinfer.device.streams import open_stream

    headers = [("host", endpoint.host)]
    if endpoint.token is not None:
        headers.append(("authorization", f"Bearer {endpoint.token}"))
    async with asyncio.timeout(timeout_s):
        reader, writer = await open_stream(endpoint)
        try:
            done = []
            for target in targets:
                start = time.perf_counter()
                writer.write(request_head("GET", target, headers))
                await writer.drain()
                status, _, body = await read_response(reader, 1 << 20)
                try:
                    doc = json.loads(body) if body else None
                except ValueError:
                    doc = None
                done.append((time.perf_counter() - start, status, doc))
        finally:
            writer.transport.abort()
    return done
