"""Chart drawing without a broker: fed by hand, drawn as the chart's thread would draw."""
import pandas as pd

from kafkalab.live import WindowChart
from kafkalab.windows import EventTimeWindows, Tumbling


def test_window_chart_shows_only_the_top_keys_as_the_top_changes():
    windows = EventTimeWindows(Tumbling(1000))
    chart = WindowChart(windows, max_keys=2, name="test:top-keys")
    for key, n in (("a", 5), ("b", 4), ("c", 1)):
        for i in range(n):
            windows.add(100 + i, key)
    chart.refresh()
    assert sorted(t.name for t in chart.figure.data if t.visible is not False) == ["a", "b"]
    for i in range(10):                      # c becomes the busiest key; b drops out of the top 2
        windows.add(200 + i, "c")
    chart.refresh()
    shown = sorted(t.name for t in chart.figure.data if t.visible is not False)
    assert shown == ["a", "c"], shown


def test_window_chart_reads_back_what_its_bars_show_open_and_final():
    windows = EventTimeWindows(Tumbling(1000))
    chart = WindowChart(windows, name="test:read-back")
    for ts in (100, 200, 300):
        chart.add_frame(pd.DataFrame({"timestamp": [ts], "key": ["a"], "partition": [0]}))
    chart.add_frame(pd.DataFrame({"timestamp": [1_500], "key": ["b"], "partition": [0]}))   # closes [0,1000)
    chart.refresh()
    shown = chart.plotted().sort_values("x")
    assert list(zip(shown["series"], shown["y"], shown["final"])) == [("a", 3.0, True), ("b", 1.0, False)]
    # the read-back matches the windows' own totals: every record drawn once
    assert shown["y"].sum() == sum(w.count for w in list(chart.closed) + windows.open_windows())


def test_the_inspector_next_to_the_window_chart_says_what_an_open_window_waits_for():
    windows = EventTimeWindows(Tumbling(1000), grace_ms=500, idle_timeout=30)
    chart = WindowChart(windows, name="test:inspector")
    windows.add(1_200, "quiet-source", partition=1)
    windows.add(50, "x", partition=0)
    windows.add(40, "x", partition=1)            # on time: [0,1000) of partition 1 closes at 1500 > 1200
    windows.add(1_600, "quiet-source", partition=1)   # stream time 1600 closes [0,1000) of partition 1
    windows.add(10, "y", partition=1)             # late: [0,1000) closed at 1500 <= 1600
    chart.refresh()
    text = chart.inspector.value
    assert "partition 0: stream time 00:00:00.050" in text and "partition 1: stream time 00:00:01.600" in text
    assert "idle timeout closes every open window in" in text
    assert "open windows</b> (2;" in text      # [0,1000) on partition 0, [1000,2000) on partition 1
    assert "<td>0</td><td>00:00:00.000 +1 s</td><td>00:00:01.500</td><td>1.4 s</td><td>1</td>" in text
    assert "late records</b> (1 kept" in text
    assert "<td>1</td><td>y</td><td>00:00:00.010</td><td>00:00:00.000 +1 s</td><td>0.1 s</td>" in text
    assert chart.widget().children[1] is chart.inspector


def test_the_inspector_lists_the_newest_five_late_records_and_counts_every_kept_one():
    windows = EventTimeWindows(Tumbling(1000), keep_late=6)
    chart = WindowChart(windows, name="test:inspector-late")
    windows.add(5_000, "now")
    for key in "abcdefg":                     # 7 late records; the windows keep the newest 6
        windows.add(10, key)
    chart.refresh()
    text = chart.inspector.value
    assert "late records</b> (6 kept; newest 5)" in text
    shown = [k for k in "abcdefg" if f"<td>{k}</td>" in text]
    assert shown == list("cdefg"), f"the inspector lists late keys {shown}; the newest five are c-g"


def test_a_window_chart_without_inspector_is_the_bare_figure():
    chart = WindowChart(EventTimeWindows(Tumbling(1000)), inspector=False, name="test:bare")
    assert chart.widget() is chart.figure and chart.inspector is None


def test_every_trace_is_added_with_its_points_so_the_front_end_never_hides_it():
    """plotly.js marks a trace added without points `visible: false` and sends that default back to
    the Python figure, which then keeps it: plotted() (and a legend) would lose the line. Seen in the
    browser test: the throughput total vanished from plotted()."""
    from kafka import TopicPartition

    from kafkalab.live import LagChart, ThroughputChart

    throughput = ThroughputChart(name="test:added-full")
    throughput.push("produced · a", 5.0)
    windows = WindowChart(EventTimeWindows(Tumbling(1000)), name="test:added-bars")
    windows.windows.add(100, "k")
    lag = LagChart("test-group", name="test:added-lag")          # never started: its history is set by hand
    lag.monitor.history.append((1.0, {TopicPartition("t", 0): 7}))
    added = []
    for chart in (throughput, windows, lag):
        chart.figure.observe(lambda change: added.extend((change["new"] or {}).get("trace_data", [])),
                             names="_py2js_addTraces")
        chart.sample(0.0)
        chart.refresh()
    assert [(t["name"], len(t.get("x", ())), len(t.get("y", ()))) for t in added] == [
        ("produced · a", 1, 1), ("k", 1, 1), ("t[0]", 1, 1)]
    assert list(lag.plotted()["y"]) == [7.0]
