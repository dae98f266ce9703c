"""Chart drawing without a broker: fed by hand, drawn as the chart's thread would draw."""
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
