"""The topic browser's pure parts, no broker: the page's HTML table, the merge of partitions into
one page order, a record's value for reading. The browsing itself: tests/integration/test_topic_browser.py."""
import json

import pandas as pd
import pytest

from kafkalab.browser import Browser, html_table, merge, pretty


def page(**columns):
    n = len(next(iter(columns.values())))
    base = {"partition": [0] * n, "offset": list(range(n)),
            "timestamp": pd.to_datetime([1_700_000_000_000 + i for i in range(n)], unit="ms", utc=True),
            "key": [f"k{i}" for i in range(n)]}
    return pd.DataFrame({**base, **columns, "headers": [{}] * n})


def test_the_table_escapes_html_in_values_keys_and_field_names():
    frame = page(**{"<img src=x onerror=alert(1)>": ["<b>bold</b>", "a & b"], "value": [None, "<script>x</script>"]})
    frame.loc[0, "key"] = "<i>key</i>"
    out = html_table(frame)
    assert "<script>" not in out and "<b>bold" not in out and "<img" not in out and "<i>key" not in out
    assert "&lt;script&gt;x&lt;/script&gt;" in out and "&lt;b&gt;bold&lt;/b&gt;" in out
    assert "&lt;i&gt;key&lt;/i&gt;" in out and "a &amp; b" in out and "&lt;img src=x" in out
    assert "title='&lt;b&gt;bold&lt;/b&gt;'" in out        # the tooltip is escaped too (quotes included)
    assert "&#x27;" in html_table(page(value=["it's"]))


def test_the_table_cuts_long_cells_marks_the_selected_row_and_tombstones_and_leaves_headers_out():
    frame = page(value=["x" * 100, None, b"\xff\x00"])
    out = html_table(frame, selected=2, tombstones={1}, chars=10)
    assert "x" * 9 + "…<" in out and "x" * 10 + "<" not in out       # cut at 10 characters, the rest in the title
    assert f"title='{'x' * 100}'" in out
    assert out.count("class=kl-sel") == 1 and "<tr class=kl-sel><td>2</td>" in out
    assert "∅ tombstone" in out and "b&#x27;\\xff\\x00&#x27;" in out
    assert "<th>headers</th>" not in out and [c in out for c in ("<th>#</th>", "<th>offset</th>")] == [True, True]


def test_missing_values_are_blank_and_numbers_plain():
    frame = page(status=pd.array([200, None], dtype="Int64"), ratio=[0.5, float("nan")], tags=[["a", "b"], None])
    out = html_table(frame)
    assert "<td title='200'>200</td>" in out and "<td title='0.5'>0.5</td>" in out
    assert "<td title='[&quot;a&quot;, &quot;b&quot;]'>" in out
    assert "nan" not in out.lower() and "&lt;NA&gt;" not in out and "None" not in out


def test_the_value_column_shows_only_when_some_record_is_not_a_json_object():
    assert "<th>value</th>" not in html_table(page(status=[200, 404], value=[None, None]))
    assert "<th>value</th>" in html_table(page(value=[None, "text"]))
    assert "∅ tombstone" in html_table(page(value=[None, None]), tombstones={1})


def run(ts):
    """A partition's records in offset order: (timestamp, offset)."""
    return [(t, o) for o, t in enumerate(ts)]


def test_the_merge_takes_the_earliest_head_and_keeps_each_partition_in_offset_order():
    runs = {0: run([10, 30, 20]), 1: run([15, 25]), 2: []}      # partition 0 out of timestamp order
    order = [(p, o) for p, (t, o) in merge(runs)]
    assert order == [(0, 0), (1, 0), (1, 1), (0, 1), (0, 2)]     # 20 after 30: offset order wins inside p0
    assert [(p, o) for p, (t, o) in merge({0: run([5, 5]), 1: run([5])})] == [(0, 0), (0, 1), (1, 0)]  # ties


def test_the_merge_backward_takes_the_latest_tail():
    runs = {0: run([10, 20, 30])[::-1], 1: run([15, 25])[::-1]}    # backward runs come newest first
    assert [(p, o) for p, (t, o) in merge(runs, forward=False)] == [(0, 2), (1, 1), (0, 1), (1, 0), (0, 0)]


def test_the_merge_stops_where_a_partition_has_unread_records_that_could_come_first():
    runs = {0: run([1, 2]), 1: run([0, 10, 11])}
    assert [(p, o) for p, (t, o) in merge(runs, open_runs={0})] == [(1, 0), (0, 0), (0, 1)]
    assert list(merge({0: [], 1: run([1])}, open_runs={0})) == []    # nothing is known to come first
    assert len(list(merge(runs, open_runs={1}))) == 5


def test_a_value_reads_as_indented_json_text_bytes_or_a_tombstone():
    assert pretty({"a": {"b": [1, 2]}, "é": True}) == json.dumps({"a": {"b": [1, 2]}, "é": True}, indent=2,
                                                                  ensure_ascii=False)
    assert pretty("plain text") == "plain text"
    assert pretty(b"\xff\x00") == "2 bytes, not UTF-8:\nb'\\xff\\x00'"
    assert "tombstone" in pretty(None) and pretty(42) == "42"


@pytest.mark.parametrize("size", [10, 501, 50.0, "50"])
def test_a_page_size_outside_20_to_500_is_refused_before_any_connection(size):
    with pytest.raises(ValueError, match="page_size must be a number of records from 20 to 500"):
        Browser("any-topic", page_size=size)
