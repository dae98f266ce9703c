"""Kafka records as Python values and DataFrames: one decoding for every reader in kafkalab.

A value is shown as what it most likely is: JSON as objects, else UTF-8 text, else the bytes,
so a poison pill never breaks a reader. A key is an identifier: text when it is UTF-8 (key
b"42" stays "42", never the number 42), else the bytes.
"""
from __future__ import annotations

import json

import numpy as np
import orjson
import pandas as pd

RECORD_COLUMNS = ["topic", "partition", "offset", "timestamp", "key", "value"]


def decode_value(raw: bytes | None):
    """JSON if it parses (orjson, about 4x faster; the json module for what orjson refuses, such as
    integers beyond 64 bits), else text, else the bytes; None (a tombstone) stays None."""
    if raw is None:
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except ValueError:   # not JSON (UnicodeDecodeError is a ValueError too)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw


def decode_key(raw: bytes | None):
    """Text if it is UTF-8, else the bytes; None stays None."""
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw


def records_frame(records) -> pd.DataFrame:
    """kafka-python ConsumerRecords as a DataFrame (timestamps in ms since the epoch), built
    column by column."""
    n = len(records)
    return pd.DataFrame({
        "topic": [r.topic for r in records],
        "partition": np.fromiter((r.partition for r in records), dtype=np.int64, count=n),
        "offset": np.fromiter((r.offset for r in records), dtype=np.int64, count=n),
        "timestamp": np.fromiter((r.timestamp for r in records), dtype=np.int64, count=n),
        "key": pd.Series([decode_key(r.key) for r in records], dtype=object),  # None stays None
        "value": pd.Series([decode_value(r.value) for r in records], dtype=object),
    }, columns=RECORD_COLUMNS)
