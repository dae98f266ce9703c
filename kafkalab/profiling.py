"""What is in a topic: partition skew, rate, keys, payload sizes and the JSON schema, from a sample.

The partition table counts the whole log (offsets, and bytes on disk as the brokers report them);
everything else describes the sample: the newest `sample` records, taken from each partition in
proportion to its size, so a skewed topic is sampled as it is.
"""
from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass

import numpy as np
import pandas as pd

from .reader import Columns, Plan, Session, columns_frame, fetch_records
from .records import decode_value

with warnings.catch_warnings():  # kafka-python 3.0 warns on import under Python 3.11
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.admin import OffsetSpec
    from kafka.errors import KafkaError


@dataclass
class Profile:
    """A topic's profile: `summary` (a Series) and DataFrames for `partitions`, `keys`, `sizes`,
    `schema` and `rate`; `figure()` draws them; displayed in a notebook, it shows all of them."""
    topic: str
    summary: pd.Series
    partitions: pd.DataFrame
    keys: pd.DataFrame
    sizes: pd.DataFrame
    schema: pd.DataFrame
    rate: pd.DataFrame
    sample: pd.DataFrame

    def figure(self):
        """Records per partition, records per interval, the top keys and value sizes, in one figure."""
        from plotly.subplots import make_subplots
        fig = make_subplots(rows=2, cols=2, subplot_titles=(
            "records per partition (whole log)", f"records per {self.summary['rate_interval']} (sample)",
            "top keys (sample share)", "value size in bytes (sample)"))
        fig.add_bar(x=self.partitions["partition"].astype(str), y=self.partitions["records"].to_numpy(),
                    name="records", row=1, col=1)
        fig.add_scatter(x=self.rate["time"], y=self.rate["records"].to_numpy(), mode="lines", name="rate",
                        row=1, col=2)
        top = self.keys.head(10)
        fig.add_bar(x=top["share"].to_numpy(), y=top["key"].astype(str), orientation="h", name="keys", row=2, col=1)
        sizes = self.sample["value_bytes"].dropna().to_numpy()
        fig.add_histogram(x=sizes, nbinsx=40, name="value bytes", row=2, col=2)
        fig.update_yaxes(autorange="reversed", row=2, col=1)
        fig.update_layout(height=560, showlegend=False, title=f"profile · {self.topic}",
                          margin=dict(l=40, r=20, t=70, b=30))
        return fig

    def _ipython_display_(self):
        from IPython.display import display
        display(self.summary.to_frame("value"), self.partitions, self.schema, self.keys.head(10), self.sizes,
                self.figure())


def profile(topic: str, sample: int = 10_000, **overrides) -> Profile:
    """Profile `topic` from its newest `sample` records (and offsets and log sizes for the whole log).

    Parameters
    ----------
    topic : the topic to profile.
    sample : how many of the newest records to read (spread over partitions by their size).
    **overrides : connection settings (kafkalab.client_config).

    Never joins a group or commits.
    """
    if not isinstance(sample, int) or sample <= 0:
        raise ValueError(f"sample must be a positive number of records, got {sample!r}")
    with Session(**overrides) as session:
        parts = sorted(session.leaders(topic))
        begin = session.offsets(topic, parts, OffsetSpec.EARLIEST)
        end = session.offsets(topic, parts, OffsetSpec.LATEST)
        sizes_on_disk = _log_sizes(session, topic)
        total = sum(end[p] - begin[p] for p in parts)
        ranges = {}
        for p in parts:
            held = end[p] - begin[p]
            take = min(held, math.ceil(sample * held / total)) if total else 0
            if take:
                ranges[p] = (end[p] - take, end[p])
        columns, _ = fetch_records(session, Plan(topic, ranges), limit=None, progress=True)
    return _profile(topic, columns, parts, begin, end, sizes_on_disk)


def _log_sizes(session: Session, topic: str) -> dict[int, int]:
    """Bytes on disk per partition (the largest replica), or {} when the cluster does not say
    (DescribeLogDirs needs the DESCRIBE permission on the cluster)."""
    try:
        answers = session.admin.describe_log_dirs([topic])
    except KafkaError:          # e.g. ClusterAuthorizationFailedError: an optional column stays empty
        return {}
    sizes: dict[int, int] = {}
    for broker in answers:
        for log_dir in broker["log_dirs"]:
            for t in log_dir.get("topics", []):
                if t["name"] == topic:
                    for part in t["partitions"]:
                        p = part["partition_index"]
                        sizes[p] = max(sizes.get(p, 0), part["partition_size"])
    return sizes


def _profile(topic, columns: Columns, parts, begin, end, sizes_on_disk) -> Profile:
    values = [decode_value(v) for v in columns.value]
    value_bytes = pd.array([None if v is None else len(v) for v in columns.value], dtype="Int64")
    key_bytes = pd.array([None if k is None else len(k) for k in columns.key], dtype="Int64")
    sample = columns_frame(columns, flatten_json=False).assign(value_bytes=value_bytes, key_bytes=key_bytes)
    n = len(sample)

    in_sample = sample.groupby("partition").agg(sample_records=("offset", "size"),
                                                sample_bytes=("value_bytes", "sum"))
    partitions = pd.DataFrame({
        "partition": parts,
        "log_start": [begin[p] for p in parts], "log_end": [end[p] for p in parts],
        "records": [end[p] - begin[p] for p in parts],
        "bytes_on_disk": pd.array([sizes_on_disk.get(p) for p in parts], dtype="Int64"),
    })
    total = partitions["records"].sum()
    partitions["share"] = (partitions["records"] / total).round(3) if total else 0.0
    partitions = partitions.merge(in_sample, left_on="partition", right_index=True, how="left").fillna(
        {"sample_records": 0, "sample_bytes": 0})

    keys = sample["key"].map(lambda k: "<no key>" if k is None else k)
    counts = keys.value_counts()
    key_table = pd.DataFrame({"key": counts.index, "records": counts.to_numpy(),
                              "share": (counts.to_numpy() / n).round(4) if n else []})

    def quantiles(s):
        s = s.dropna().astype("int64")
        if s.empty:
            return {"p50": np.nan, "p95": np.nan, "max": np.nan, "mean": np.nan}
        return {"p50": s.quantile(0.5), "p95": s.quantile(0.95), "max": s.max(), "mean": round(s.mean(), 1)}
    sizes = pd.DataFrame([{"of": "value", **quantiles(sample["value_bytes"])},
                          {"of": "key", **quantiles(sample["key_bytes"])}])

    times = sample["timestamp"]
    span = (times.max() - times.min()) if n else pd.Timedelta(0)
    interval = _interval(span)
    rate = (sample.set_index("timestamp").resample(interval)["offset"].count().rename("records").reset_index()
            .rename(columns={"timestamp": "time"}) if n else pd.DataFrame({"time": [], "records": []}))

    header_keys = Counter(k for h in columns.headers if h for k, _ in h)
    summary = pd.Series({
        "topic": topic, "partitions": len(parts), "records": int(total), "sampled": n,
        "first_timestamp": times.min() if n else None, "last_timestamp": times.max() if n else None,
        "timestamp_type": ("LogAppendTime" if columns.log_append_time and not columns.create_time else
                           "CreateTime" if columns.create_time and not columns.log_append_time else
                           "mixed" if n else None),
        "distinct_keys": int(keys.nunique()), "tombstones": int(sum(v is None for v in columns.value)),
        "json_objects": int(sum(type(v) is dict for v in values)),
        "header_keys": ", ".join(f"{k} ({c})" for k, c in header_keys.most_common()) or "none",
        "rate_interval": interval,
    })
    return Profile(topic, summary, partitions, key_table, sizes, infer_schema(values), rate, sample)


def _interval(span: pd.Timedelta) -> str:
    """A resampling interval giving roughly 20-200 points over `span`."""
    for unit, seconds in (("100ms", 0.1), ("1s", 1), ("10s", 10), ("1min", 60), ("10min", 600), ("1h", 3600)):
        if span.total_seconds() / seconds <= 200:
            return unit
    return "1D"


_TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "string", list: "array", type(None): "null"}


def infer_schema(values: list) -> pd.DataFrame:
    """One row per field of the JSON objects (nested as dotted names): the types seen, and the share
    of objects where the field is missing and where it is null."""
    objects = [v for v in values if type(v) is dict]
    types: dict[str, Counter] = {}

    def walk(obj: dict, prefix: str):
        for name, value in obj.items():
            field = f"{prefix}{name}"
            if type(value) is dict:
                types.setdefault(field, Counter())["object"] += 1
                walk(value, f"{field}.")
            else:
                types.setdefault(field, Counter())[_TYPE_NAMES.get(type(value), type(value).__name__)] += 1
    for obj in objects:
        walk(obj, "")
    n = len(objects)
    rows = [{"field": field, "types": ", ".join(t for t, _ in seen.most_common() if t != "null") or "null",
             "present": sum(seen.values()),
             "missing_share": round(1 - sum(seen.values()) / n, 4),
             "null_share": round(seen["null"] / n, 4)}
            for field, seen in types.items()]
    return pd.DataFrame(rows, columns=["field", "types", "present", "missing_share", "null_share"])
