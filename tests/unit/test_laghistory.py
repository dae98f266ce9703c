"""The lag-history store and its status over time, on hand-written samples (no broker)."""
import json

import pandas as pd
import pytest

from kafkalab.lagwatch import NO_COMMIT
from kafkalab.laghistory import (DB_FILE, STATE_FILE, LagStore, lag_history, lag_history_chart,
                                 watch, watch_status)
from kafkalab.times import time_bound

NOW = pd.Timestamp("2026-11-28 10:00", tz="UTC")
T0 = NOW.timestamp() - 600          # ten minutes ago


def store_with(tmp_path, group="g", points=(), members=1):
    """points: per sample (one every 10 s from T0), a list of (partition, committed or None, log_start, end)."""
    store = LagStore(tmp_path / DB_FILE)
    store.create()
    for i, parts in enumerate(points):
        store.add(T0 + 10 * i, group, [("t", p, c, start, end, end - (start if c is None else c), 1.5, members)
                                       for p, c, start, end in parts])
    return store


def test_samples_round_trip_with_a_missing_commit_as_na(tmp_path):
    store = store_with(tmp_path, points=[[(0, None, 0, 325), (1, 337, 0, 337)]])
    frame = store.samples("g")
    assert frame["committed"].dtype == "Int64" and frame["committed"].isna().tolist() == [True, False]
    assert frame["lag"].tolist() == [325, 0] and store.groups() == ["g"]


def test_samples_are_bounded_by_time_and_reach_back_for_the_judges_window(tmp_path):
    store = store_with(tmp_path, points=[[(0, i, 0, 100)] for i in range(6)])
    assert store.samples("g", T0 + 20, T0 + 40)["committed"].tolist() == [2, 3]
    assert store.samples("g", T0 + 20, T0 + 40, before=2)["committed"].tolist() == [0, 1, 2, 3]
    assert store.samples("other").empty


def test_errors_and_pruning(tmp_path):
    store = store_with(tmp_path, points=[[(0, 1, 0, 2)]] * 3)
    store.add_error(T0 + 5, "g", "BrokerUnavailable: no broker")
    assert store.errors()[["group", "error"]].values.tolist() == [["g", "BrokerUnavailable: no broker"]]
    store.prune(T0 + 15)
    assert len(store.samples("g")) == 1 and store.errors().empty


def test_status_over_time_follows_the_judge_over_a_sliding_window(tmp_path):
    # committed stuck at 50 with lag (STALL once 3 samples are in), then it moves but lag grows (WARN),
    # then lag shrinks (OK)
    points = [[(0, 50, 0, 100)]] * 4 + [[(0, 80, 0, 140)], [(0, 105, 0, 145)]]
    store_with(tmp_path, points=points)
    frame = lag_history("g", since=pd.Timestamp(T0, unit="s", tz="UTC"), home=tmp_path, window=3)
    assert frame["status"].tolist() == ["OK", "OK", "STALL", "STALL", "WARN", "OK"]
    assert frame["rule"].iloc[0].startswith("collecting samples") and "stuck at 50" in frame["rule"].iloc[3]
    assert str(frame["time"].dt.tz) == "UTC" and frame["time"].is_monotonic_increasing


def test_the_window_reaches_back_before_since(tmp_path):
    store_with(tmp_path, points=[[(0, 50, 0, 100)]] * 5)
    frame = lag_history("g", since=pd.Timestamp(T0 + 30, unit="s", tz="UTC"), home=tmp_path, window=3)
    assert frame["status"].tolist() == ["STALL", "STALL"]   # judged with the samples at T0+10 and T0+20


def test_a_partition_without_commit_is_kept_and_says_how_its_lag_is_counted(tmp_path):
    store_with(tmp_path, points=[[(0, None, 0, 325)]] * 3, members=0)
    frame = lag_history("g", since=None, home=tmp_path)
    assert frame["committed"].isna().all() and (frame["lag"] == 325).all()
    assert set(frame["status"]) == {"STOP"} and all(r.endswith(NO_COMMIT) for r in frame["rule"])


def test_a_group_never_watched_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="kafkalab watch g"):
        lag_history("g", home=tmp_path)
    store_with(tmp_path, points=[[(0, 1, 0, 1)]])
    with pytest.raises(ValueError, match=r"no lag history of group 'typo'.*groups recorded: g"):
        lag_history("typo", home=tmp_path)
    assert lag_history("g", since=None, until=pd.Timestamp(T0 - 60, unit="s", tz="UTC"), home=tmp_path).empty


def test_the_chart_colors_each_sample_by_its_status(tmp_path):
    store_with(tmp_path, points=[[(0, 50, 0, 100), (1, 10, 0, 10)]] * 3, members=0)
    fig = lag_history_chart("g", since=None, home=tmp_path)
    lines = {t.name: t for t in fig.data if t.legendgroup != "status"}
    assert set(lines) == {"t[0]", "t[1]"} and list(lines["t[0]"].y) == [50, 50, 50]
    assert list(lines["t[0]"].marker.color) == ["#6a1b9a"] * 3 and list(lines["t[1]"].marker.color) == ["#2e7d32"] * 3
    assert {t.name for t in fig.data if t.legendgroup == "status"} == {"STOP", "OK"}
    assert fig.layout.title.text == "lag history · g · STOP"


@pytest.mark.parametrize("spec, expected", [
    ("-1h", NOW - pd.Timedelta(hours=1)), ("-15min", NOW - pd.Timedelta(minutes=15)),
    ("-30s", NOW - pd.Timedelta(seconds=30)), ("-2d", NOW - pd.Timedelta(days=2)), ("now", NOW),
    ("2026-11-28 09:00", pd.Timestamp("2026-11-28 09:00", tz="UTC")),
    ("2026-11-28T09:00+01:00", pd.Timestamp("2026-11-28 08:00", tz="UTC")),
    (pd.Timestamp("2026-11-28 09:00").to_pydatetime(), pd.Timestamp("2026-11-28 09:00", tz="UTC")),
    (None, None)])
def test_time_bounds(spec, expected):
    assert time_bound(spec, now=NOW) == expected


@pytest.mark.parametrize("bad", ["-1 fortnight", "yesterday-ish", 12345])
def test_bad_time_bounds_say_what_a_time_is(bad):
    with pytest.raises((ValueError, TypeError), match="time"):
        time_bound(bad, now=NOW)


@pytest.mark.parametrize("groups, interval", [([], 1), ([""], 1), (["g"], 0.1), (["g"], "5"), (["g"], True)])
def test_bad_watch_arguments_are_refused_before_anything_starts(tmp_path, groups, interval):
    with pytest.raises(ValueError):
        watch(groups, interval, home=tmp_path)
    assert not (tmp_path / STATE_FILE).exists()


def test_a_pid_file_whose_process_is_gone_is_stale(tmp_path):
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    (tmp_path / STATE_FILE).write_text(json.dumps({"pid": int(dead), "groups": ["g"], "interval": 1}))
    status = watch_status(tmp_path)
    assert status["running"] is False and status["stale_pid"] == int(dead)
    (tmp_path / STATE_FILE).write_text(json.dumps({"pid": __import__("os").getpid()}))   # alive, not a watcher
    assert watch_status(tmp_path)["running"] is False
