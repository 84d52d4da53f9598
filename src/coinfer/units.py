"""Reading quantities people type — bandwidths, durations, addresses — one way everywhere.

Bandwidth: bits and bytes are told apart by case and by word, as iperf3 and tc write them:
``b``/``bit`` are bits, ``B``/``byte`` are bytes; prefixes k, M, G, T are powers of 1000
(Ki, Mi, Gi of 1024). So ``10Mbps``, ``10mbps``, ``10Mbit/s``, ``10mbit`` (tc) and ``10M``
(iperf3's ``-b 10M``) are 10 Mbit/s, while ``10MBps``, ``10MB/s`` and ``10MiB/s`` are bytes per
second (×8). A bare number is bits per second. (tc itself reads ``mbps`` as megabytes; here the
lower-case ``b`` means bits, as most people mean it — write ``MBps`` for bytes.)

Durations: ``20ms``, ``0.5s``, ``150us``, ``2min``, or a bare number of seconds.
"""

from __future__ import annotations

import math
import re

from coinfer.errors import BadValueError

_PREFIX = {
    "": 1.0,
    "k": 1e3,
    "m": 1e6,
    "g": 1e9,
    "t": 1e12,
    "ki": 2.0**10,
    "mi": 2.0**20,
    "gi": 2.0**30,
    "ti": 2.0**40,
}
_BITS = {"", "b", "bit", "bits", "bps", "b/s", "bit/s", "bits/s", "bitps"}
_BYTES = {"B", "byte", "bytes", "Bps", "B/s", "byte/s", "bytes/s"}
_NUMBER = r"([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)"
_BANDWIDTH = re.compile(rf"\s*{_NUMBER}\s*([kKmMgGtT]i?)?\s*([A-Za-z/]*)\s*")
BANDWIDTH_HELP = "write it like 5mbps, 10Mbit/s, 10mbit, 10M (bits) or 2MB/s (bytes)"


def parse_bandwidth(text: str | float, what: str = "bandwidth") -> float:
    """Bits per second (ValueError naming ``what`` and the forms it takes)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _BANDWIDTH.fullmatch(str(text))
        if match is None:
            raise BadValueError(f"cannot read {what} {text!r}: {BANDWIDTH_HELP}")
        number, prefix, unit = match.groups()
        unit_words = unit.lower() if unit.lower() in {"bit", "bits", "byte", "bytes"} else unit
        lowered = unit_words if unit_words in _BYTES else unit_words.lower()
        if unit_words in _BYTES:
            per = 8.0
        elif lowered in _BITS:
            per = 1.0
        else:
            raise BadValueError(f"cannot read {what} {text!r} (unit {unit!r}): {BANDWIDTH_HELP}")
        value = float(number) * _PREFIX[(prefix or "").lower()] * per
    if not (math.isfinite(value) and value > 0):
        raise BadValueError(f"{what} must be a positive rate, got {text!r}: {BANDWIDTH_HELP}")
    return value


_SECONDS = {"": 1.0, "s": 1.0, "sec": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "min": 60.0}
_DURATION = re.compile(rf"\s*([+-]?{_NUMBER[1:-1]})\s*([a-zµ]*)\s*")


def parse_seconds(text: str | float, what: str = "duration", *, positive: bool = False) -> float:
    """Seconds from ``500ms``, ``0.5s``, ``150us`` or ``2min`` (text needs its unit, but for 0; a
    number is seconds); never negative, and above zero when ``positive``."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        match = _DURATION.fullmatch(str(text).lower())
        if match is None or match.group(2) not in _SECONDS:
            raise BadValueError(f"cannot read {what} {text!r}: write it like 20ms, 0.5s or 150us")
        value = float(match.group(1)) * _SECONDS[match.group(2)]
        if not match.group(2) and value != 0:  # `--rtt 20` is far likelier 20 ms than 20 s
            raise BadValueError(
                f"{what} {text!r} has no unit: write {match.group(1)}ms or {match.group(1)}s"
            )
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        bound = "above 0" if positive else "0 or more"
        raise BadValueError(f"{what} must be {bound}, got {text!r}")
    return value


def parse_address(text: str, what: str = "--edge") -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8765`` for IPv6), the port in 1..65535."""
    host, sep, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not sep or not host or not port.isdigit():
        raise BadValueError(f"{what} must be HOST:PORT (e.g. 127.0.0.1:8765), got {text!r}")
    number = int(port)
    if not 1 <= number <= 65535:
        raise BadValueError(f"{what} {text!r}: the port must be in 1..65535, got {number}")
    return host, number


def check_positive(value: float, what: str) -> float:
    """``value`` if it is a finite number above zero (a load, a scale, a requirement)."""
    if not (math.isfinite(value) and value > 0):
        raise BadValueError(f"{what} must be a number above 0, got {value:g}")
    return value
