"""ClusterPanel.shown(): what the panel's widgets show, read back without a cluster."""
import pandas as pd

from kafkalab.clusterview import PARTITION_COLUMNS, ClusterPanel


class _NoCluster:
    """The panel is never started here: nothing asks the cluster anything."""
    bootstrap = "127.0.0.1:1"


def _snapshot(rows, error=None):
    nodes = [{"id": n, "alive": n != 2} for n in (1, 2, 3)]
    snap = {"at": 0.0, "nodes": nodes, "error": error}
    if error is None:
        snap["partitions"] = pd.DataFrame(rows, columns=PARTITION_COLUMNS)
        snap["quorum"] = {"leader": 3, "epoch": 7, "high_watermark": 10, "voters": {1: 0, 2: None, 3: 0}}
    return snap


def test_shown_reads_the_table_and_the_counts_back_from_the_widgets():
    panel = ClusterPanel(_NoCluster(), topics=["t<&>"], name="test:panel-shown")
    panel._show(_snapshot([
        ("t<&>", 0, 1, [1, 2, 3], [1, 3], True, False),
        ("t<&>", 1, 3, [3, 1, 2], [1, 3], True, False),
        ("t<&>", 2, -1, [2], [], True, True),
    ]))
    shown = panel.shown()
    assert shown["error"] is None
    assert (shown["under_replicated"], shown["offline"], shown["quorum_leader"]) == (3, 1, 3)
    got = shown["partitions"]
    assert list(got["topic"]) == ["t<&>"] * 3                 # escaped in the HTML, unescaped here
    assert list(got["partition"]) == [0, 1, 2]
    assert list(got["leader"]) == [1, 3, -1]
    assert list(got["replicas"]) == [[1, 2, 3], [3, 1, 2], [2]]
    assert list(got["isr"]) == [[1, 3], [1, 3], []]


def test_shown_follows_the_latest_sample_and_reports_an_error_shown_instead():
    panel = ClusterPanel(_NoCluster(), name="test:panel-shown-error")
    panel._show(_snapshot([("a", 0, 2, [1, 2], [1, 2], False, False)]))
    assert panel.shown()["under_replicated"] == 0
    panel._show(_snapshot([], error="KafkaTimeoutError: no quorum"))
    shown = panel.shown()
    assert shown["error"] == "KafkaTimeoutError: no quorum"
    assert shown["under_replicated"] is None and shown["quorum_leader"] is None   # not shown while in error
