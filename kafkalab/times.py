"""Times as users write them ("-15min", "2026-11-28 09:00", a datetime), as tz-aware UTC Timestamps.

One parser for every API that takes a time: read() and the Browser (where an int is an offset) and
lag_history() (times only). Record timestamps are UTC milliseconds, so a time without a zone is UTC.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

_RELATIVE = re.compile(r"^\s*[-+]")


def parse_time(spec, now: pd.Timestamp | None = None) -> pd.Timestamp | int | None:
    """What a start/end argument means: None (the log's start or end), an offset (int >= 0), or a
    tz-aware UTC timestamp.

    Accepts a datetime, pandas Timestamp or date; an ISO string ("2026-11-28 09:00", "2026-11-28T09:00Z");
    a time relative to `now` ("-15min", "-2h", "-1d", "+30s", a timedelta); "now"; or an offset.
    A time without a zone is taken as UTC (record timestamps are UTC milliseconds).
    """
    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if spec is None:
        return None
    if isinstance(spec, bool):
        raise TypeError("start/end cannot be a bool: give a time, a relative time ('-15min') or an offset")
    if isinstance(spec, (int, np.integer)):
        if spec < 0:
            raise ValueError(f"offset {spec} is negative: for a time relative to now, write a string ('-15min')")
        return int(spec)
    if isinstance(spec, (timedelta, np.timedelta64)):
        return now + pd.Timedelta(spec)
    if isinstance(spec, str):
        text = spec.strip()
        if text.lower() == "now":
            return now
        try:
            if _RELATIVE.match(text):     # pandas' unit for days is "D" ("d" is deprecated)
                return now + pd.Timedelta(re.sub(r"(?<=\d)\s*d$", "D", text))
            return _utc(pd.Timestamp(text))
        except ValueError:
            raise ValueError(f"cannot read {spec!r} as a time: use an ISO time ('2026-11-28 09:00', UTC unless "
                             f"it names a zone), a relative time ('-15min', '-2h', '-1d') or 'now'") from None
    if isinstance(spec, (datetime, date, pd.Timestamp, np.datetime64)):
        return _utc(pd.Timestamp(spec))
    raise TypeError(f"start/end must be a time, a relative time ('-15min') or an offset, not {type(spec).__name__}")


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    if ts is pd.NaT:
        raise ValueError("NaT is not a time")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def time_bound(spec, now: pd.Timestamp | None = None) -> pd.Timestamp | None:
    """parse_time() for APIs that take a time only: an int is refused, not taken as an offset."""
    if isinstance(spec, (int, np.integer)) and not isinstance(spec, bool):
        raise TypeError(f"a time must be a datetime, an ISO string or a relative time such as '-1h', not {spec!r}")
    return parse_time(spec, now)
