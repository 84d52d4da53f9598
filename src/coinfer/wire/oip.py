"""The KServe Open Inference Protocol v2 (REST) as coinfer speaks it, both ways: the names it
gives what it serves, the tensors' datatypes, and the inference request and response documents
with the binary tensor extension (spec: kserve/kserve docs/predict-api/v2; Triton's
binary_tensor_data extension). No I/O here: ``wire.http`` frames requests on the edge,
``edge.v2`` answers them, ``device.v2_client`` asks any v2 server.

Names (docs/protocol.md): the back half of cut K of MODEL is the model ``MODEL.cutK``, of exit
E ``MODEL.exitE.cutK``; ``MODEL`` (``MODEL.exitE``) alone is cut 0, the whole model on the
server. A version, when given, must be ``1``. Its inputs are the cut's boundary tensors named
``boundary:NAME``, its outputs the model's named ``output:NAME`` — the names ``coinfer export``
gives the exported back halves, so one device client talks to coinfer's edge and to any server
of the exported backs alike.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coinfer.arrays import NUMPY_DTYPES, dtype_name
from coinfer.output import strict
from coinfer.wire.protocol import ErrorCode, Limits, ProtocolError
from coinfer.wire.tensors import raw_bytes

DATATYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "bfloat16": "BF16",
    "float64": "FP64",
    "int64": "INT64",
    "int32": "INT32",
    "int16": "INT16",
    "int8": "INT8",
    "uint8": "UINT8",
    "bool": "BOOL",
}
FROM_DATATYPE = {v: k for k, v in DATATYPES.items()}
VERSION = "1"
HEADER_LENGTH = "inference-header-content-length"  # the binary tensor extension
_NAME = re.compile(r"^(?P<model>.+?)(?:\.exit(?P<exit>\d+))?(?:\.cut(?P<cut>\d+))?$")
HTTP_STATUS = {
    ErrorCode.BAD_FRAME: 400,
    ErrorCode.BAD_HEADER: 400,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.UNKNOWN_MODEL: 404,
    ErrorCode.BAD_CUT: 404,
    ErrorCode.BAD_TENSOR: 400,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.INTERNAL: 500,
    ErrorCode.TIMEOUT: 408,
    ErrorCode.UNSUPPORTED: 404,
    ErrorCode.BUSY: 503,
    ErrorCode.WRONG_MODEL: 409,
}


def v2_name(model: str, cut: int, exit: int | None = None) -> str:
    """What the back half of ``cut`` (of ``exit``) of ``model`` is called over v2."""
    return model + (f".exit{exit}" if exit is not None else "") + (f".cut{cut}" if cut else "")


def parse_v2_name(name: str) -> tuple[str, int, int | None]:
    """``(model, cut, exit)`` of a v2 model name (its cut 0 when it names none)."""
    found = _NAME.match(name)
    if found is None:
        raise ProtocolError(ErrorCode.UNKNOWN_MODEL, f"no model is called {name!r}")
    exit = found["exit"]
    return found["model"], int(found["cut"] or 0), None if exit is None else int(exit)


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class V2Input:
    """One input of an inference request, checked for form (its fit to the model is the
    receiver's to check): its bytes follow the JSON (``binary_bytes``) or it holds ``data``."""

    name: str
    shape: list[int]
    dtype: str  # numpy's name
    binary_bytes: int | None
    data: np.ndarray | None


@dataclass(frozen=True)
class V2Request:
    """An inference request: its inputs, the outputs asked for (None: all) and whether each
    comes back as binary, and the request's parameters."""

    id: str | None
    inputs: list[V2Input]
    outputs: dict[str, bool] | None  # name: binary
    binary_default: bool
    parameters: dict[str, Any]


def _bad(text: str, code: ErrorCode = ErrorCode.BAD_HEADER) -> ProtocolError:
    return ProtocolError(code, text)


def _parameters(doc: Mapping[str, Any], what: str) -> dict[str, Any]:
    params = doc.get("parameters", {})
    if not isinstance(params, dict):
        raise _bad(f"{what}: 'parameters' must be an object")
    return params


def _input(i: int, doc: Any, limits: Limits) -> V2Input:
    if not isinstance(doc, dict):
        raise _bad(f"input {i} must be an object")
    name, shape, datatype = doc.get("name"), doc.get("shape"), doc.get("datatype")
    if not isinstance(name, str):
        raise _bad(f"input {i} needs a 'name'")
    if (
        not isinstance(shape, list)
        or len(shape) > limits.max_dims
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape)
    ):
        raise _bad(f"input {name!r}: bad shape {shape!r}", ErrorCode.BAD_TENSOR)
    if datatype not in FROM_DATATYPE:
        raise _bad(
            f"input {name!r}: datatype {datatype!r} not one of {', '.join(FROM_DATATYPE)}",
            ErrorCode.BAD_TENSOR,
        )
    dtype = FROM_DATATYPE[datatype]
    size = _parameters(doc, f"input {name!r}").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise _bad(f"input {name!r}: binary_data_size {size!r} is not a byte count")
        if "data" in doc:
            raise _bad(f"input {name!r}: both binary_data_size and data")
        return V2Input(name, shape, dtype, size, None)
    return V2Input(name, shape, dtype, None, _json_data(name, doc.get("data"), shape, dtype))


def _json_data(name: str, data: Any, shape: list[int], dtype: str) -> np.ndarray:
    """A tensor given as JSON numbers (flat, or nested as its shape), in its dtype."""
    if data is None:
        raise _bad(f"input {name!r} has neither data nor binary_data_size")
    flat: list[Any] = []
    stack = [data]
    while stack:  # flatten nested lists without recursion (the JSON parser bounded the depth)
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        elif _real(item) or isinstance(item, bool):
            flat.append(item)
        else:
            raise _bad(f"input {name!r}: data holds {type(item).__name__}", ErrorCode.BAD_TENSOR)
    if len(flat) != math.prod(shape):
        raise _bad(f"input {name!r}: {len(flat)} values for shape {shape}", ErrorCode.BAD_TENSOR)
    try:
        return np.asarray(flat, dtype=NUMPY_DTYPES[dtype]).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise _bad(f"input {name!r}: {exc}", ErrorCode.BAD_TENSOR) from None


def parse_request(doc: Any, limits: Limits) -> V2Request:
    """An inference request's JSON, every field checked for form."""
    if not isinstance(doc, dict):
        raise _bad("an inference request is a JSON object")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs or len(inputs) > limits.max_tensors:
        raise _bad(f"'inputs' must be a list of 1 to {limits.max_tensors} inputs")
    parsed = [_input(i, d, limits) for i, d in enumerate(inputs)]
    if len({p.name for p in parsed}) != len(parsed):
        raise _bad("an input is named twice")
    params = _parameters(doc, "the request")
    binary_default = params.get("binary_data_output") is True
    outputs: dict[str, bool] | None = None
    if "outputs" in doc:
        asked = doc["outputs"]
        if not isinstance(asked, list) or len(asked) > limits.max_tensors:
            raise _bad(f"'outputs' must be a list of at most {limits.max_tensors} outputs")
        outputs = {}
        for i, out in enumerate(asked):
            if not isinstance(out, dict) or not isinstance(out.get("name"), str):
                raise _bad(f"output {i} needs a 'name'")
            binary = _parameters(out, f"output {out['name']!r}").get("binary_data")
            outputs[out["name"]] = binary_default if binary is None else binary is True
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise _bad("'id' must be a string")
    return V2Request(rid, parsed, outputs, binary_default, params)


def response(
    model_name: str,
    request: V2Request | None,
    names: Sequence[str],
    arrays: Sequence[np.ndarray],
    parameters: Mapping[str, Any],
) -> tuple[bytes, list[memoryview], int | None]:
    """An inference response: its JSON, the binary outputs that follow it, and the JSON's
    length when anything binary follows (the ``Inference-Header-Content-Length``)."""
    wanted = request.outputs if request is not None else None
    if wanted is not None:
        unknown = sorted(set(wanted) - set(names))
        if unknown:
            raise _bad(f"no output {unknown[0]!r}: the outputs are {', '.join(names)}")
    outputs, blobs = [], []
    for name, array in zip(names, arrays, strict=True):
        if wanted is not None and name not in wanted:
            continue
        binary = wanted[name] if wanted is not None else bool(request and request.binary_default)
        a = np.ascontiguousarray(array)
        entry: dict[str, Any] = {
            "name": name,
            "datatype": DATATYPES[dtype_name(a.dtype) or "float32"],
            "shape": list(a.shape),
        }
        if binary:
            raw = raw_bytes(a)
            entry["parameters"] = {"binary_data_size": raw.nbytes}
            blobs.append(raw)
        else:
            values = a.astype(np.float64) if a.dtype.name in ("bfloat16", "float16") else a
            entry["data"] = values.reshape(-1).tolist()
        outputs.append(entry)
    doc: dict[str, Any] = {"model_name": model_name, "model_version": VERSION, "outputs": outputs}
    if request is not None and request.id is not None:
        doc["id"] = request.id
    if parameters:
        doc["parameters"] = dict(parameters)
    text = json.dumps(strict(doc), allow_nan=False, separators=(",", ":")).encode()
    return text, blobs, len(text) if blobs else None
