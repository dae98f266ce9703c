"""The reader's pure parts: time specs, record batch decoding (against kafka-python's own decoder),
JSON flattening into typed columns. The reads themselves are in tests/integration/test_read.py."""
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from kafka.record import MemoryRecords, MemoryRecordsBuilder

import kafkalab
from kafkalab.profiling import infer_schema
from kafkalab.reader import Columns, columns_frame, decode_batches, flatten
from kafkalab.times import parse_time

NOW = pd.Timestamp("2026-11-28 10:00:00", tz="UTC")


@pytest.mark.parametrize("spec, expected", [
    ("-15min", NOW - pd.Timedelta(minutes=15)),
    ("-2h", NOW - pd.Timedelta(hours=2)),
    ("-1d", NOW - pd.Timedelta(days=1)),
    ("+30s", NOW + pd.Timedelta(seconds=30)),
    ("now", NOW),
    (timedelta(minutes=-5), NOW - pd.Timedelta(minutes=5)),
    ("2026-11-28 09:00", pd.Timestamp("2026-11-28 09:00", tz="UTC")),            # no zone: UTC
    ("2026-11-28T09:00:00+01:00", pd.Timestamp("2026-11-28 08:00", tz="UTC")),   # a zone: converted
    (datetime(2026, 11, 28, 9, 30), pd.Timestamp("2026-11-28 09:30", tz="UTC")),
    (datetime(2026, 11, 28, 9, 30, tzinfo=timezone(timedelta(hours=-5))), pd.Timestamp("2026-11-28 14:30", tz="UTC")),
    (pd.Timestamp("2026-11-28 09:00", tz="Europe/Paris"), pd.Timestamp("2026-11-28 08:00", tz="UTC")),
    (0, 0), (1234, 1234), (None, None),
])
def test_time_specs_mean_utc_times_or_offsets(spec, expected):
    got = parse_time(spec, now=NOW)
    assert got == expected and type(got) is type(expected)
    if isinstance(got, pd.Timestamp):
        assert str(got.tz) == "UTC"


@pytest.mark.parametrize("spec, error, says", [
    ("yesterday-ish", ValueError, "relative time"),
    ("-15 parsecs", ValueError, "relative time"),
    (-5, ValueError, "negative.*'-15min'"),
    (True, TypeError, "bool"),
    (1.5, TypeError, "not float"),
])
def test_bad_time_specs_say_what_is_accepted(spec, error, says):
    with pytest.raises(error, match=says):
        parse_time(spec, now=NOW)


def _batch(records, compression=0, base_offset=0):
    builder = MemoryRecordsBuilder(magic=2, compression_type=compression, batch_size=1 << 20, offset=base_offset)
    for ts, key, value, headers in records:
        builder.append(ts, key, value, headers or [])
    builder.close()
    return bytes(builder.buffer())


RECORDS = [
    (1_700_000_000_000, b"k1", b'{"a": 1}', []),
    (1_699_999_000_000, None, b"plain text", [("trace", b"abc"), ("empty", None)]),   # earlier: negative delta
    (1_700_000_500_000, b"\xff\xfe", None, []),                                      # binary key, tombstone
    (1_700_000_600_000, b"k" * 300, b"x" * 70_000, [("h", b"v" * 200)]),              # multi-byte lengths
]


@pytest.mark.parametrize("compression", [0, 1, 2, 3, 4], ids=["none", "gzip", "snappy", "lz4", "zstd"])
def test_batches_decode_exactly_as_kafka_pythons_own_decoder(compression):
    raw = _batch(RECORDS, compression, base_offset=1000) + _batch(RECORDS[:2], compression, base_offset=1004)
    expected = []
    records = MemoryRecords(raw)
    while (batch := records.next_batch()) is not None:
        expected += [(r.offset, r.timestamp, r.key, r.value, [(k, v) for k, v in r.headers]) for r in batch]
    out = Columns()
    after = decode_batches(raw, 7, 0, 10**9, out)
    got = list(zip(out.offset, out.timestamp, out.key, out.value, [h or [] for h in out.headers]))
    assert got == expected and len(got) == 6
    assert after == 1006 and out.partition == [7] * 6 and out.create_time and not out.log_append_time


def test_decoding_keeps_only_the_asked_offsets_and_stops_at_a_partial_batch():
    first, second = _batch(RECORDS, base_offset=0), _batch(RECORDS, base_offset=4)
    out = Columns()
    after = decode_batches(first + second[:-10], 0, 2, 5, out)     # the second batch is cut short
    assert out.offset == [2, 3] and after == 4
    out = Columns()
    assert decode_batches(first + second, 0, 2, 5, out) == 8 and out.offset == [2, 3, 4]
    assert decode_batches(b"", 0, 0, 10, Columns()) is None


def test_flatten_nested_missing_and_mixed_fields_into_typed_columns():
    values = [
        {"user": {"id": 1, "country": "FR"}, "n": 1, "ok": True, "tag": "a"},
        {"user": {"id": 2}, "n": 2, "ok": False, "tag": 3},              # country missing, tag an int
        {"n": None, "extra": [1, 2]},                                     # no user, n null
        "not an object",
        None,                                                              # a tombstone
    ]
    fields, rest = flatten(values, reserved=["partition", "offset"])
    assert list(fields.columns) == ["user.id", "user.country", "n", "ok", "tag", "extra"]
    assert str(fields["user.id"].dtype) == "Int64" and fields["user.id"].tolist()[:2] == [1, 2]
    assert fields["user.id"].isna().tolist() == [False, False, True, True, True]
    assert str(fields["n"].dtype) == "Int64" and fields["n"].tolist()[:2] == [1, 2]   # ints stay ints with NA
    assert str(fields["ok"].dtype) == "boolean"
    assert fields["tag"].tolist()[:2] == ["a", 3] and fields["tag"].dtype == object   # mixed types kept as they are
    assert fields["extra"].iloc[2] == [1, 2]
    assert rest == [None, None, None, "not an object", None]


def test_flatten_keeps_float_fields_float_and_renames_fields_that_clash_with_record_columns():
    fields, _ = flatten([{"price": 1.0, "offset": 5}, {"price": None, "offset": 6}, {"offset": 7}],
                        reserved=["partition", "offset"])
    assert list(fields.columns) == ["price", "value.offset"]
    assert fields["price"].dtype == "float64" and fields["value.offset"].tolist() == [5, 6, 7]


def test_a_field_that_is_an_object_in_some_records_and_a_scalar_in_others_keeps_both():
    fields, _ = flatten([{"loc": {"x": 1}}, {"loc": "unknown"}], reserved=[])
    assert fields["loc.x"].tolist()[0] == 1 and fields["loc"].tolist() == [None, "unknown"]


def test_frame_of_mixed_payloads_never_fails():
    out = Columns(partition=[0] * 5, offset=list(range(5)), timestamp=[1_700_000_000_000 + i for i in range(5)],
                  key=[b"a", None, b"\xff", b"b", b"c"],
                  value=[b'{"x": 1}', b"text", b"\x00\xff\xfe", None, b"[1, 2]"],
                  headers=[None, [("h", b'{"y": 2}')], None, None, None])
    df = columns_frame(out)
    assert list(df.columns) == ["partition", "offset", "timestamp", "key", "x", "value", "headers"]
    assert df["value"].tolist() == [None, "text", b"\x00\xff\xfe", None, [1, 2]]
    assert df["key"].tolist() == ["a", None, b"\xff", "b", "c"]
    assert df["headers"].tolist()[1] == {"h": {"y": 2}} and str(df["timestamp"].dt.tz) == "UTC"
    assert columns_frame(out, flatten_json=False)["value"].tolist()[0] == {"x": 1}


def test_read_refuses_a_bad_limit_before_connecting():
    with pytest.raises(ValueError, match="limit"):
        kafkalab.read("t", limit=0)


def test_schema_inference_on_mixed_values():
    schema = infer_schema([{"a": 1}, {"a": "x", "b": None}, {"a": {"c": True}}, "text", None]).set_index("field")
    assert schema.loc["a", "types"] == "int, string, object" and schema.loc["a.c", "missing_share"] == round(2 / 3, 4)
    assert schema.loc["b", "types"] == "null" and schema.loc["b", "null_share"] == round(1 / 3, 4)


def test_time_bounds_round_up_to_whole_milliseconds():
    """A bound of x.5 ms keeps a record at x+1 ms and not one at x ms: start <= ts < end stays exact."""
    from kafkalab.reader import _ms
    t = pd.Timestamp(1_700_000_000_000, unit="ms", tz="UTC")
    assert [_ms(t), _ms(t + pd.Timedelta("500us")), _ms(t - pd.Timedelta("500us"))] == [
        1_700_000_000_000, 1_700_000_000_001, 1_700_000_000_000]
    assert _ms(pd.Timestamp("9999-01-01", tz="UTC")) == 253_370_764_800_000      # no nanosecond overflow
