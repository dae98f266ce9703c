"""The rebalance timeline's bookkeeping, on a fake clock: ownership stretches and measured pauses."""
import pandas as pd

from kafkalab.groups import Timeline, pauses


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def test_eager_assignment_replaces_and_incremental_adds():
    clock = Clock()
    tl = Timeline(clock=clock)
    tl.assigned("g", "A", [0, 1, 2], incremental=False)
    tl.assigned("g", "A", [1], incremental=False)
    assert tl.owned("g") == {"A": frozenset({1})}
    tl.assigned("g", "A", [3], incremental=True)
    tl.revoked("g", "A", [1])
    assert tl.owned("g") == {"A": frozenset({3})}
    tl.left("g", "A")
    assert tl.owned("g") == {"A": frozenset()}


def test_settled_needs_every_partition_once_over_the_members():
    tl = Timeline(clock=Clock())
    tl.assigned("g", "A", [0, 1], incremental=False)
    assert not tl.settled("g", 3, 1)
    tl.assigned("g", "B", [2], incremental=False)
    assert tl.settled("g", 3, 2) and not tl.settled("g", 3, 1)
    tl.assigned("g", "B", [1], incremental=True)       # partition 1 owned twice
    assert not tl.settled("g", 3, 2)


def test_ownership_stretches_end_when_a_partition_is_revoked():
    clock = Clock()
    tl = Timeline(clock=clock)
    tl.assigned("g", "A", [0, 1], incremental=False)
    clock.t = 2.0
    tl.revoked("g", "A", [1])
    clock.t = 3.0
    tl.assigned("g", "B", [1], incremental=False)
    clock.t = 5.0
    own = tl.ownership()
    rows = {(r.partition, r.member): (r.start, r.end) for r in own.itertuples()}
    assert rows == {(0, "A"): (0.0, 5.0), (1, "A"): (0.0, 2.0), (1, "B"): (3.0, 5.0)}


def test_pauses_measure_the_longest_silence_per_group_and_per_partition():
    batches = pd.DataFrame([("g", "A", t, p, 1) for t in (0.1, 0.2, 0.3) for p in (0, 1)]
                           + [("g", "A", 1.5, 0, 1), ("g", "B", 2.5, 1, 1)],
                           columns=["group", "member", "t", "partition", "records"])
    marks = pd.DataFrame([(0.0, "start"), (0.35, "B joins")], columns=["t", "label"])
    events = pd.DataFrame([("g", "A", 0.5, "revoked", (0, 1), ()), ("g", "A", 1.0, "assigned", (0,), (0,)),
                           ("g", "B", 1.0, "assigned", (1,), (1,))],
                          columns=["group", "member", "t", "kind", "partitions", "owned"])
    out = pauses(batches, marks, now=3.0, events=events).set_index("change")
    assert out.loc["start", "group_idle_s"] == 0.1 and out.loc["start", "revoked"] == 0
    joined = out.loc["B joins"]
    assert joined["revoked"] == 2
    assert joined["group_idle_s"] == round(1.5 - 0.35, 2)          # nothing at all from 0.35 to 1.5
    assert joined["partition_idle_s"] == round(2.5 - 0.35, 2) and joined["worst_partition"] == 1


def test_a_member_that_leaves_does_not_count_as_revoked():
    batches = pd.DataFrame([("g", "A", 0.5, 0, 1)], columns=["group", "member", "t", "partition", "records"])
    marks = pd.DataFrame([(0.0, "A leaves")], columns=["t", "label"])
    events = pd.DataFrame([("g", "A", 0.2, "revoked", (0,), ()), ("g", "A", 0.3, "left", (), ())],
                          columns=["group", "member", "t", "kind", "partitions", "owned"])
    assert pauses(batches, marks, now=1.0, events=events)["revoked"].tolist() == [0]


def test_finish_bounds_the_last_window():
    clock = Clock()
    tl = Timeline(clock=clock)
    tl.mark("only")
    clock.t = 1.0
    tl.consumed("g", "A", {0: 3})
    clock.t = 2.0
    tl.finish()
    clock.t = 60.0                                                  # asked long after the run ended
    assert tl.pauses()["window_s"].tolist() == [2.0]
