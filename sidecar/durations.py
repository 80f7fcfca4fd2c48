"""Time formats Dapr accepts: Go durations, ISO-8601 durations/repetitions, RFC 3339 times.

Go durations (``time.ParseDuration``): a sequence of decimal numbers with units
``ns us µs μs ms s m h``; no ``d``. The Python SDK emits ``1h0m0s0ms0μs``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "Schedule",
    "format_go_duration",
    "parse_due_time",
    "parse_go_duration",
    "parse_period",
    "parse_rfc3339",
]

_GO_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,  # U+00B5 micro sign
    "μs": 1e-6,  # U+03BC greek mu
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_ISO_DURATION = re.compile(
    r"^P(?:(?P<y>\d+)Y)?(?:(?P<mo>\d+)M)?(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<mi>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$"
)
_ISO_REPEAT = re.compile(r"^R(?P<n>\d*)/(?P<d>P.+)$")


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string; raises ``ValueError`` on anything else."""
    s = text.strip()
    if s in ("0", ""):
        if s == "":
            raise ValueError("empty duration")
        return 0.0
    sign = 1.0
    if s[0] in "+-":
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    pos = 0
    total = 0.0
    while pos < len(s):
        m = _GO_PART.match(s, pos)
        if m is None:
            raise ValueError(f"invalid duration {text!r}")
        total += float(m.group(1)) * _GO_UNITS[m.group(2)]
        pos = m.end()
    if pos == 0:
        raise ValueError(f"invalid duration {text!r}")
    return sign * total


def format_go_duration(seconds: float) -> str:
    """A Go-style duration string (``1m30s``, ``500ms``) for ``seconds``."""
    if seconds == 0:
        return "0s"
    ms_total = round(seconds * 1000)
    h, rem = divmod(ms_total, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    out = ""
    if h:
        out += f"{h}h"
    if m or (h and (s or ms)):
        out += f"{m}m"
    if ms:
        out += f"{s + ms / 1000:g}s"
    elif s or not out:
        out += f"{s}s"
    return out


def _parse_iso_duration(text: str) -> float:
    m = _ISO_DURATION.match(text)
    if m is None or text == "P" or text.endswith("T"):
        raise ValueError(f"invalid ISO-8601 duration {text!r}")
    parts = {k: float(v) if v else 0.0 for k, v in m.groupdict().items()}
    days = parts["y"] * 365 + parts["mo"] * 30 + parts["w"] * 7 + parts["d"]
    return days * 86400 + parts["h"] * 3600 + parts["mi"] * 60 + parts["s"]


def parse_rfc3339(text: str) -> datetime:
    """An aware datetime from an RFC 3339 string (``Z`` accepted)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"time {text!r} has no UTC offset")
    return value


def parse_due_time(text: str, now: datetime | None = None) -> float:
    """Seconds until the first fire: Go duration, ISO-8601 duration or RFC 3339 time."""
    if not text:
        return 0.0
    try:
        return max(0.0, parse_go_duration(text))
    except ValueError:
        pass
    if text.startswith("P"):
        return _parse_iso_duration(text)
    at = parse_rfc3339(text)
    current = now or datetime.now(UTC)
    return max(0.0, (at - current).total_seconds())


@dataclass(frozen=True)
class Schedule:
    """When a timer or reminder fires: first after ``due``, then every ``period``.

    ``period`` of ``None`` fires once; ``repeats`` of ``None`` repeats until deleted.
    """

    due: float
    period: float | None
    repeats: int | None


def parse_period(text: str) -> tuple[float | None, int | None]:
    """``(period seconds or None, repetitions or None)`` from a Go or ISO-8601 period."""
    if not text:
        return None, None
    m = _ISO_REPEAT.match(text)
    if m is not None:
        n = int(m.group("n")) if m.group("n") else None
        return _parse_iso_duration(m.group("d")), n
    if text.startswith("P"):
        return _parse_iso_duration(text), None
    seconds = parse_go_duration(text)
    if seconds <= 0:
        raise ValueError(f"period {text!r} must be positive")
    return seconds, None
