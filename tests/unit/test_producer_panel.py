"""The producer panel's stats, drawn without a broker (the producer is never started)."""
import re

from kafkalab import ProducerPanel, RateProducer


def test_the_stats_keep_their_two_lines_however_many_digits_the_counters_grow():
    """A status line that wraps once `sent` reaches five digits, or a p99 four, changes the panel's
    height at every refresh and moves every cell below it (the browser test's screenshot of a later
    cell then waited for the page to stand still, and timed out)."""
    p = RateProducer("a-topic", rate=345, name="panel-test")
    panel = ProducerPanel(p)
    shapes = []
    for n in (5, 123_456_789):
        p.sent = p.acked = n
        panel._update_stats()
        value = panel._rows[0]["stats"].value
        assert f"sent {n} · acked {n}" in value
        shapes.append(re.sub(r"\d+", "N", value))
    assert shapes[0] == shapes[1]
    lines = re.findall(r"<div style='([^']*)'>", shapes[0])
    assert len(lines) == 2 and all("white-space:nowrap" in style for style in lines), shapes[0]
    assert "<br" not in shapes[0]
