"""Event-time windows against hand-computed results: in order, out of order, late, idle."""
import pandas as pd
import pytest

from kafkalab.windows import EventTimeWindows, Hopping, SessionWindows, Tumbling, windows_frame


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def rows(windows):
    return [(w.key, w.start, w.end, w.count) for w in windows]


def test_tumbling_windows_close_on_stream_time():
    w = EventTimeWindows(Tumbling(10))
    assert w.add(1, "a", 2.0) == [] and w.add(5, "a", 4.0) == [] and w.add(7, "b", 1.0) == []
    closed = w.add(12, "a", 10.0)
    assert rows(closed) == [("a", 0, 10, 2), ("b", 0, 10, 1)]
    assert all(c.final for c in closed)
    a = closed[0]
    assert (a.sum, a.mean, a.min, a.max) == (6.0, 3.0, 2.0, 4.0)
    assert rows(w.open_windows()) == [("a", 10, 20, 1)]


def test_windows_are_half_open_and_epoch_aligned():
    w = EventTimeWindows(Tumbling(10))
    w.add(10, "k")  # exactly at a boundary: belongs to [10, 20), not [0, 10)
    assert rows(w.open_windows()) == [("k", 10, 20, 1)]
    assert Tumbling(5000).windows_for(1_700_000_001_234) == [(1_700_000_000_000, 1_700_000_005_000)]


def test_a_late_record_is_counted_and_kept_not_dropped_silently():
    w = EventTimeWindows(Tumbling(10))
    w.add(1, "a")
    w.add(15, "a")           # closes [0, 10)
    assert w.add(3, "a", 7.0) == []
    assert w.late_count == 1
    late = w.late[0]
    assert (late.key, late.timestamp, late.stream_time, late.value) == ("a", 3, 15, 7.0)
    assert rows(w.open_windows()) == [("a", 10, 20, 1)]  # the late record went nowhere else


def test_out_of_order_within_grace_is_accepted():
    w = EventTimeWindows(Tumbling(10), grace_ms=5)
    w.add(1)
    assert w.add(12) == []            # [0,10) stays open until stream time 15
    assert w.add(3) == [] and w.late_count == 0
    closed = w.add(16)
    assert rows(closed) == [(None, 0, 10, 2)]
    w.add(4)                          # now too late even with grace
    assert w.late_count == 1


def test_hopping_windows_overlap():
    assert Hopping(10, 5).windows_for(7) == [(0, 10), (5, 15)]
    assert Hopping(10, 3).windows_for(9) == [(0, 10), (3, 13), (6, 16), (9, 19)]
    assert Hopping(10, 5).windows_for(3) == [(0, 10)]  # none starts before the epoch
    w = EventTimeWindows(Hopping(10, 5))
    for ts in (1, 7, 12):
        w.add(ts, "x")
    # stream time 12 closed [0,10) = {1, 7}; open: [5,15) = {7, 12}, [10,20) = {12}
    assert rows(w.open_windows()) == [("x", 5, 15, 2), ("x", 10, 20, 1)]
    assert rows(w.add(20, "x")) == [("x", 5, 15, 2), ("x", 10, 20, 1)]  # 20 >= both ends


def test_sessions_split_on_the_gap_and_close_after_it():
    w = SessionWindows(10)
    w.add(0, "a")
    w.add(5, "a")
    w.add(3, "b")
    closed = w.add(30, "a")           # stream time 30: a's [0,15) and b's [3,13) are over
    assert rows(closed) == [("b", 3, 13, 1), ("a", 0, 15, 2)]
    assert rows(w.open_windows()) == [("a", 30, 40, 1)]


def test_an_out_of_order_record_merges_two_sessions():
    w = SessionWindows(10, grace_ms=20)
    w.add(0, "a")
    w.add(18, "a")
    assert rows(w.open_windows()) == [("a", 0, 10, 1), ("a", 18, 28, 1)]
    w.add(9, "a")                     # within 10 of both: one session 0..18
    assert rows(w.open_windows()) == [("a", 0, 28, 3)]


def test_a_quiet_stream_keeps_its_last_window_open_without_an_idle_timeout():
    clock = FakeClock()
    w = EventTimeWindows(Tumbling(10), clock=clock)
    w.add(1, "a")
    clock.now += 3600
    assert w.poll_idle() == [] and rows(w.open_windows()) == [("a", 0, 10, 1)]


def test_idle_timeout_closes_the_last_window_on_the_wall_clock():
    clock = FakeClock()
    w = EventTimeWindows(Tumbling(10), idle_timeout=5, clock=clock)
    w.add(1, "a")
    w.add(12, "a")
    clock.now += 4.9
    assert w.poll_idle() == []
    clock.now += 0.2
    assert rows(w.poll_idle()) == [("a", 10, 20, 1)]
    assert w.open_windows() == []
    w.add(13, "a")                    # its window was emitted: late now, not a second result
    assert w.late_count == 1


def test_flush_emits_everything_once():
    w = EventTimeWindows(Tumbling(10))
    for ts in (1, 11, 21):
        w.add(ts)
    assert rows(w.flush()) == [(None, 20, 30, 1)]
    assert w.flush() == []


def test_every_record_is_accounted_for_exactly_once():
    import random
    rnd = random.Random(7)
    w = EventTimeWindows(Tumbling(100), grace_ms=50)
    emitted, n = [], 5000
    base = 0
    for _ in range(n):
        base += rnd.randint(0, 5)
        emitted += w.add(base - rnd.randint(0, 200), rnd.choice("abc"))
    emitted += w.flush()
    assert sum(x.count for x in emitted) + w.late_count == n
    assert len({(x.key, x.start) for x in emitted}) == len(emitted)  # each window once


def test_add_frame_takes_datetimes_and_value_columns():
    df = pd.DataFrame({"timestamp": pd.to_datetime([1, 4, 11], unit="ms", utc=True),
                       "key": ["a", "a", "a"], "value": [{"x": 1}, {"x": 3}, {"x": 5}]})
    w = EventTimeWindows(Tumbling(10))
    closed = w.add_frame(df, value=lambda v: v["x"])
    assert rows(closed) == [("a", 0, 10, 2)] and closed[0].mean == 2.0
    frame = windows_frame(closed + w.flush())
    assert list(frame["count"]) == [2, 1]
    assert frame["start"].iloc[1] == pd.Timestamp(10, unit="ms", tz="UTC")
    assert windows_frame([]).empty


@pytest.mark.parametrize("make", [lambda: Tumbling(0), lambda: Hopping(10, 0), lambda: Hopping(5, 10),
                                  lambda: SessionWindows(-1), lambda: EventTimeWindows(Tumbling(1), grace_ms=-1),
                                  lambda: EventTimeWindows(Tumbling(1), idle_timeout=0)])
def test_bad_parameters_are_refused(make):
    with pytest.raises(ValueError):
        make()


def test_stream_time_is_per_partition_so_a_lagging_partition_is_not_late():
    w = EventTimeWindows(Tumbling(10))
    w.add(1, "a", partition=0)
    assert w.add(50, "b", partition=1) == []        # partition 1 runs ahead ...
    assert w.add(3, "a", partition=0) == [] and w.late_count == 0  # ... partition 0 is not late
    assert w.stream_time == 50
    assert rows(w.add(11, "a", partition=0)) == [("a", 0, 10, 2)]  # closes on its own stream time


def test_many_keys_close_in_deadline_order():
    w = EventTimeWindows(Tumbling(10))
    for k in range(200):
        w.add(k % 10, f"k{k}")
    closed = w.add(10, "z")
    assert len(closed) == 200 and all(c.count == 1 for c in closed)


KINDS = {"tumbling": lambda grace: EventTimeWindows(Tumbling(100), grace_ms=grace),
         "hopping-uneven": lambda grace: EventTimeWindows(Hopping(100, 30), grace_ms=grace),
         "hopping": lambda grace: EventTimeWindows(Hopping(100, 50), grace_ms=grace),
         "session": lambda grace: SessionWindows(40, grace_ms=grace)}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("grace", [0, 60])
def test_a_batch_gives_exactly_what_record_by_record_gives(kind, grace):
    """The vectorised batch path against the one-record-at-a-time definition, on messy data."""
    import random
    rnd = random.Random(11)
    t, records = 0, []
    for i in range(3000):
        t += rnd.randint(0, 4)
        records.append((max(0, t - rnd.choice([0, 0, 0, 5, 50, 300])), rnd.choice(["a", "b", None]),
                        rnd.choice([1.5, -2.0, None, 7.0]), rnd.choice([0, 1, 2])))
    one = KINDS[kind](grace)
    emitted_one = [w for r in records for w in one.add(*r)] + one.flush()
    many = KINDS[kind](grace)
    emitted_many = []
    for lo in range(0, len(records), 250):
        chunk = records[lo:lo + 250]
        df = pd.DataFrame({"timestamp": [r[0] for r in chunk], "key": [r[1] for r in chunk],
                           "value": [{"x": r[2]} for r in chunk], "partition": [r[3] for r in chunk]})
        emitted_many += many.add_frame(df, value=lambda v: v["x"])
    emitted_many += many.flush()

    def canon(ws):
        return sorted((str(w.key), w.start, w.end, w.count, round(w.sum, 6), w.min, w.max) for w in ws)
    assert canon(emitted_many) == canon(emitted_one)
    assert many.late_count == one.late_count and one.late_count > 0
    if kind in ("tumbling", "session"):  # hopping windows count a record more than once
        assert sum(w.count for w in emitted_one) + one.late_count == len(records)


def test_tumbling_is_hopping_by_its_own_size():
    assert isinstance(Tumbling(100), Hopping) and Tumbling(100).advance_ms == 100
    assert Tumbling(100).windows_for(250) == [(200, 300)]
    assert repr(Tumbling(100)) == "Tumbling(size_ms=100)"


def test_event_time_windows_point_session_users_to_their_class():
    with pytest.raises(TypeError, match="SessionWindows"):
        EventTimeWindows(40)


def test_inspect_says_why_a_window_is_open_and_counts_down_the_idle_timeout():
    clock = FakeClock()
    w = EventTimeWindows(Tumbling(1000), grace_ms=200, idle_timeout=5, clock=clock)
    w.add(100, "a", partition=0)
    w.add(1_300, "a", partition=0)          # partition 0: stream time 1300 closes [0, 1000) (deadline 1200)
    w.add(400, "b", partition=1)            # partition 1 went quiet at 400
    clock.now += 2
    df = w.inspect()
    assert list(df["state"]) == ["open", "open"]
    row = df.set_index("partition").loc[1]
    assert (row["key"], row["count"], row["to_close_ms"]) == ("b", 1, 1_200 - 400)
    assert row["closes_at"] == pd.Timestamp(1_200, unit="ms", tz="UTC")
    assert row["stream_time"] == pd.Timestamp(400, unit="ms", tz="UTC")
    assert row["idle_close_s"] == pytest.approx(3.0)
    assert "800 ms short of end + grace (200 ms)" in row["why"] and "after 3.0 s" in row["why"]
    assert df.set_index("partition").loc[0, "to_close_ms"] == 2_200 - 1_300
    w.add(1_200, "b", partition=1)          # stream time reaches the deadline: the window closes
    assert list(w.inspect()["partition"]) == [0, 1]   # [0,1000) of b closed; [1000,2000) of b is open
    assert w.inspect().set_index("partition").loc[1, "start"] == pd.Timestamp(1_000, unit="ms", tz="UTC")


def test_inspect_without_idle_timeout_says_only_a_newer_record_closes_it():
    w = EventTimeWindows(Tumbling(1000))
    w.add(500, "a")
    row = w.inspect().iloc[0]
    assert row["why"].endswith("no idle timeout") and pd.isna(row["idle_close_s"])


def test_inspect_lists_each_late_record_with_the_window_it_missed():
    w = EventTimeWindows(Hopping(1000, 500), grace_ms=100)
    w.add(2_000, "a", partition=3)
    w.add(700, "x", partition=3)            # in [0,1000) and [500,1500): both closed (1600 <= 2000)
    late = w.inspect().query("state == 'late'").iloc[0]
    assert (late["partition"], late["key"], late["count"]) == (3, "x", 1)
    assert late["start"] == pd.Timestamp(500, unit="ms", tz="UTC")        # the newest window it would join
    assert late["timestamp"] == pd.Timestamp(700, unit="ms", tz="UTC")
    assert late["to_close_ms"] == 1_600 - 2_000 and "by 400 ms" in late["why"]


def test_inspect_on_sessions_names_the_session_a_late_record_missed():
    s = SessionWindows(gap_ms=100)
    s.add(1_000, "u", partition=0)
    s.add(500, "u", partition=0)            # its own session [500, 600) closed at 600 <= 1000
    late = s.inspect().query("state == 'late'").iloc[0]
    assert (late["start"], late["end"]) == (pd.Timestamp(500, unit="ms", tz="UTC"),
                                            pd.Timestamp(600, unit="ms", tz="UTC"))
    opened = s.inspect().query("state == 'open'").iloc[0]
    assert opened["to_close_ms"] == 1_100 - 1_000


def test_late_records_from_a_batch_keep_their_partition():
    w = EventTimeWindows(Tumbling(10))
    w.add_frame(pd.DataFrame({"timestamp": [50, 5], "key": ["k", "k"], "partition": [2, 2]}))
    assert [(r.partition, r.timestamp) for r in w.late] == [(2, 5)]
