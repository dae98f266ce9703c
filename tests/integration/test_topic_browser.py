"""kafkalab.Browser on the real session broker: paging visits every record once, in order, both
ways; jumps to offsets and times land where they should; partition, key and query filters; every
kind of payload renders; errors show in the widget and keep the page; nothing is left running."""
import json
import threading
import time
import uuid

import pandas as pd
import pytest
from kafka import KafkaProducer

import kafkalab
from kafkalab.browser import SCAN_PAGES, Browser

pytestmark = pytest.mark.integration

BASE = (int(time.time()) - 3600) * 1000     # record timestamps the tests set (an hour ago: within retention)
N = 157


def produce(name, records):
    """records: (partition, timestamp ms, key, value bytes or None[, headers])."""
    with KafkaProducer(**kafkalab.client_config()) as p:
        for partition, ts, key, value, *headers in records:
            p.send(name, partition=partition, timestamp_ms=ts, key=key and key.encode(), value=value,
                   headers=headers[0] if headers else None)
        p.flush()


@pytest.fixture(scope="module")
def events():
    """N JSON records on 3 partitions, spread unevenly, one timestamp each (i seconds after BASE)."""
    name = kafkalab.recreate_topic(f"browse-{uuid.uuid4().hex[:8]}", partitions=3)
    rows, next_offset = [], [0, 0, 0]
    for i in range(N):
        p = (i * i + i // 10) % 3
        value = {"i": i, "status": 200 + 100 * (i % 4), "user": {"country": "FR" if i % 5 == 0 else "DE"}}
        rows.append({"partition": p, "offset": next_offset[p], "ts": BASE + i * 1000, "key": f"user-{i % 13}",
                     **value})
        next_offset[p] += 1
    produce(name, [(r["partition"], r["ts"], r["key"], json.dumps({k: r[k] for k in ("i", "status", "user")}
                                                                   ).encode()) for r in rows])
    return name, pd.DataFrame(rows)      # in timestamp order: the order pages must show


def shown(b):
    return list(zip(b.frame["partition"], b.frame["offset"]))


def test_paging_visits_every_record_once_in_order_forward_then_back(events):
    name, sent = events
    b = Browser(name, page_size=20)
    assert b.at_start and not b.at_end and len(b.frame) == 20
    pages = [shown(b)]
    while not b.at_end:
        b.next()
        assert b.error is None, b.error
        pages.append(shown(b))
    expected = list(zip(sent["partition"], sent["offset"]))
    assert [r for pg in pages for r in pg] == expected and [len(pg) for pg in pages] == [20] * 7 + [17]
    assert b.frame["timestamp"].is_monotonic_increasing and list(b.frame["i"]) == list(range(140, N))
    b.next()                                           # past the end: the page stays, and says why
    assert shown(b) == pages[-1] and "no newer records" in b.message.value and b.error is None
    back = [shown(b)]
    while not b.at_start:
        b.prev()
        back.insert(0, shown(b))
    assert [r for pg in back for r in pg] == expected
    assert back == pages                                    # prev retraces the pages next made
    b.prev()
    assert shown(b) == back[0] and "no older records" in b.message.value


def test_last_shows_the_newest_page_and_first_the_oldest(events):
    name, sent = events
    b = Browser(name, page_size=20, start="end")
    assert b.at_end and list(b.frame["i"]) == list(range(N - 20, N))
    back = [list(b.frame["i"])]
    while not b.at_start:                  # pages cut from the end: the short one is the oldest
        b.prev()
        back.insert(0, list(b.frame["i"]))
    assert [i for pg in back for i in pg] == list(range(N)) and [len(pg) for pg in back] == [17] + [20] * 7
    b.first()
    assert b.at_start and list(b.frame["i"]) == list(range(20))
    b.last()
    assert list(b.frame["i"]) == list(range(N - 20, N))


def test_a_new_page_size_rereads_from_the_same_first_record(events):
    name, sent = events
    b = Browser(name, page_size=20)
    b.next()
    assert b.frame["i"].iloc[0] == 20
    b.page_size.value = 50
    assert list(b.frame["i"]) == list(range(20, 70)) and b.error is None
    b.next()
    assert list(b.frame["i"]) == list(range(70, 120))


def test_a_jump_to_an_offset_starts_each_partition_there(events):
    name, sent = events
    b = Browser(name, page_size=20)
    b.jump(30)
    after = sent[sent["offset"] >= 30]
    assert set(after["partition"]) == {0, 1, 2}
    assert list(b.frame["i"]) == list(after["i"][:20])
    assert b.frame.groupby("partition")["offset"].min().to_dict() == {0: 30, 1: 30, 2: 30}
    b.jump_to.value = "5"                  # the text box: digits are an offset
    assert list(b.frame["i"]) == list(sent[sent["offset"] >= 5]["i"][:20])


def test_a_jump_to_a_time_lands_on_the_first_record_at_or_after_it(events):
    name, sent = events
    b = Browser(name, page_size=20)
    b.jump(pd.Timestamp(BASE + 77_000, unit="ms", tz="UTC"))
    assert list(b.frame["i"]) == list(range(77, 97)) and b.frame["timestamp"].iloc[0].value // 10**6 == BASE + 77_000
    b.jump_to.value = str(pd.Timestamp(BASE + 100_500, unit="ms"))      # an ISO string in UTC, between records
    assert b.frame["i"].iloc[0] == 101 and b.error is None
    b.jump(pd.Timestamp(BASE + N * 1000 + 5000, unit="ms", tz="UTC"))    # after every record: an empty page
    assert b.frame.empty and b.at_end and "no records here" in b.table.value
    b.prev()
    assert list(b.frame["i"]) == list(range(N - 20, N))


def test_the_partition_filter_pages_through_one_partition_in_offset_order(events):
    name, sent = events
    b = Browser(name, page_size=20, partition=1)
    mine = sent[sent["partition"] == 1]
    seen = list(b.frame["offset"])
    while not b.at_end:
        b.next()
        seen += list(b.frame["offset"])
    assert seen == list(mine["offset"]) and set(b.frame["partition"]) == {1}
    since = b.frame["timestamp"].iloc[0].value // 10**6
    b.partition.value = "all"               # all partitions again, from the time of the page's first record
    assert list(b.frame["i"]) == list(sent[sent["ts"] >= since]["i"][:20]) and b.frame["partition"].nunique() == 3


def test_the_key_filter_keeps_keys_containing_the_text_and_says_how_many_were_scanned(events):
    name, sent = events
    b = Browser(name, page_size=20)
    b.key.value = "user-1"                  # user-1, user-10, user-11, user-12
    wanted = sent[sent["key"].str.contains("user-1", regex=False)]
    assert list(b.frame["i"]) == list(wanted["i"][:20]) and len(b.frame) == 20
    assert b.scanned == int(wanted["i"].iloc[19]) + 1 > 20
    assert f"20 records of {b.scanned} scanned" in b.status.value


def test_a_query_over_a_nested_field_filters_the_records(events):
    name, sent = events
    b = Browser(name, page_size=20)
    b.query.value = "status >= 400 and `user.country` == 'FR'"
    wanted = sent[(sent["status"] >= 400) & (sent["user"].map(lambda u: u["country"]) == "FR")]
    assert 0 < len(wanted) < 20 and N < SCAN_PAGES * 20      # the whole topic is scanned for one page
    assert list(b.frame["i"]) == list(wanted["i"]) and b.scanned == N and b.error is None
    assert (b.frame["user.country"] == "FR").all() and (b.frame["status"] >= 400).all()
    assert f"{len(wanted)} records of {N} scanned" in b.status.value


def test_a_bad_query_shows_an_error_in_red_and_keeps_the_page(events):
    name, sent = events
    b = Browser(name, page_size=20)
    b.next()
    before, table = b.frame.copy(), b.table.value
    b.query.value = "status >>>= 2"
    assert b.error and "#c62828" in b.message.value and "page shown is unchanged" in b.message.value
    pd.testing.assert_frame_equal(b.frame, before)
    assert b.table.value == table
    b.query.value = "no_such_field > 1"
    assert "no_such_field" in b.error
    b.jump("not a time")
    assert "jump to an offset (digits) or a time" in b.error
    pd.testing.assert_frame_equal(b.frame, before)
    b.query.value = ""                      # fixed: the next action works and the error goes
    b.next()
    assert b.error is None and b.message.value == "" and b.frame["i"].iloc[0] == 40


def test_a_broker_gone_shows_an_error_and_keeps_the_page(events):
    from kafkalab.broker.local import free_port
    name, sent = events
    b = Browser(name, page_size=20)
    before = b.frame.copy()
    b.overrides["bootstrap_servers"] = f"127.0.0.1:{free_port()}"      # nothing listens there
    b.next()
    assert "BrokerUnavailable" in b.error
    pd.testing.assert_frame_equal(b.frame, before)


def test_pages_step_over_offsets_without_records_such_as_transaction_markers():
    name = kafkalab.recreate_topic(f"browse-tx-{uuid.uuid4().hex[:8]}", partitions=2)
    p = KafkaProducer(**kafkalab.client_config(), transactional_id=f"tx-{uuid.uuid4().hex[:6]}")
    try:
        p.init_transactions()
        for batch in range(3):              # a commit marker after each 10 records takes an offset
            p.begin_transaction()
            for i in range(10):
                p.send(name, value=json.dumps({"n": batch * 10 + i}).encode(), partition=0,
                       timestamp_ms=BASE + (batch * 10 + i) * 1000)
            p.commit_transaction()
    finally:
        p.close()
    b = Browser(name, page_size=20)         # offsets 0-19 hold 19 records: the page reads on to fill itself
    assert list(b.frame["n"]) == list(range(20)) and list(b.frame["offset"])[-2:] == [19, 20]
    b.next()
    assert list(b.frame["n"]) == list(range(20, 30)) and b.at_end
    b.prev()
    assert list(b.frame["n"]) == list(range(20)) and b.at_start


def test_an_unknown_topic_raises_topic_not_found_at_construction():
    with pytest.raises(kafkalab.TopicNotFound, match="does not exist"):
        Browser(f"no-such-topic-{uuid.uuid4().hex[:8]}")


def test_json_text_binary_and_tombstone_values_all_render_with_their_headers():
    name = kafkalab.recreate_topic(f"browse-mixed-{uuid.uuid4().hex[:8]}", partitions=1)
    produce(name, [
        (0, BASE, "j", json.dumps({"order": {"id": 7, "lines": [1, 2]}}).encode(), [("trace", b"abc")]),
        (0, BASE + 1, "t", b"<b>plain</b> text"),
        (0, BASE + 2, "b", b"\xff\x00\x10"),
        (0, BASE + 3, "d", None),
    ])
    b = Browser(name, page_size=20)
    assert list(b.frame["key"]) == ["j", "t", "b", "d"] and b.frame["order.id"].iloc[0] == 7
    table = b.table.value
    assert "&lt;b&gt;plain&lt;/b&gt; text" in table and "b&#x27;\\xff\\x00\\x10&#x27;" in table
    assert "∅ tombstone" in table and "<b>plain" not in table
    b.select(0)
    assert '\n    &quot;id&quot;: 7,' in b.detail.value and "trace: abc" in b.detail.value and "kl-sel" in b.table.value
    b.select(1)
    assert "&lt;b&gt;plain&lt;/b&gt; text" in b.detail.value and "(no headers)" in b.detail.value
    b.record.value = 2                      # the record # box selects too
    assert b.selected == 2 and "3 bytes, not UTF-8" in b.detail.value
    b.select(3)
    assert "tombstone" in b.detail.value
    b.select(9)
    assert "no record #9" in b.error and b.selected == 3


def test_no_kafkalab_or_client_thread_is_left_after_browsing_and_stop_all(events):
    name, sent = events
    before = {t.ident for t in threading.enumerate()}
    b = Browser(name, page_size=20)
    b.next()
    b.key.value = "user-2"
    b.last()
    kafkalab.stop_all()
    left = [t.name for t in threading.enumerate() if t.ident not in before]
    assert not left, f"threads left by the browser: {left}"
    assert not [t.name for t in threading.enumerate() if t.name.startswith("kafkalab:")]
    assert len(b.frame) > 0 and set(b.frame["key"]) == {"user-2"}
