"""Consumer groups measured: who owned which partition when, and how long consumption stopped.

A `Timeline` records, from any number of group members in their own threads, every change of a
member's assignment and every batch it consumed. From that it draws the ownership of each
partition over time and measures, for each membership change (`mark()`), how long the whole group
consumed nothing and how long the worst partition waited.

Members are workers (kafkalab.runtime): `KafkaPythonMember` runs a kafka-python KafkaConsumer,
`ConfluentMember` a confluent-kafka (librdkafka) Consumer, which also speaks Kafka 4's consumer
group protocol (KIP-848, `group.protocol=consumer`) that kafka-python 3.0.12 does not. Each client
is created, polled and closed by its member's one thread.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterable

import pandas as pd

from .config import confluent_config
from .runtime import Worker, wait_until

EVENT_COLUMNS = ["group", "member", "t", "kind", "partitions", "owned"]
BATCH_COLUMNS = ["group", "member", "t", "partition", "records"]


class Timeline:
    """A thread-safe record of one or more groups' assignments and consumption, in seconds since
    the timeline was created (`clock`, monotonic by default)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self.t0 = clock()
        self._lock = threading.Lock()
        self._events: list[tuple] = []     # (group, member, t, kind, partitions, owned)
        self._batches: list[tuple] = []    # (group, member, t, partition, records)
        self._marks: list[tuple] = []      # (t, label)
        self._owned: dict[tuple[str, str], frozenset] = {}
        self.end: float | None = None       # set by finish(): the last window of pauses() ends there

    def now(self) -> float:
        return self.clock() - self.t0

    # -- recording, from the members' threads ----------------------------------------------------
    def assigned(self, group: str, member: str, partitions: Iterable[int], incremental: bool) -> None:
        """`partitions` were given to `member`: all it owns now (eager) or added to what it owns."""
        with self._lock:
            before = self._owned.get((group, member), frozenset())
            owned = (before | set(partitions)) if incremental else frozenset(partitions)
            self._set(group, member, "assigned", partitions, owned)

    def revoked(self, group: str, member: str, partitions: Iterable[int], kind: str = "revoked") -> None:
        """`member` gave `partitions` up (kind "lost" when it was not asked: evicted, timed out)."""
        with self._lock:
            owned = self._owned.get((group, member), frozenset()) - set(partitions)
            self._set(group, member, kind, partitions, owned)

    def left(self, group: str, member: str) -> None:
        """`member` closed: it owns nothing any more."""
        with self._lock:
            self._set(group, member, "left", self._owned.get((group, member), frozenset()), frozenset())

    def _set(self, group, member, kind, partitions, owned) -> None:
        self._owned[(group, member)] = frozenset(owned)
        self._events.append((group, member, self.now(), kind, tuple(sorted(partitions)), tuple(sorted(owned))))

    def consumed(self, group: str, member: str, counts: dict[int, int]) -> None:
        """`member` just consumed counts[partition] records of each partition."""
        t = self.now()
        with self._lock:
            self._batches += [(group, member, t, p, n) for p, n in counts.items() if n]

    def finish(self) -> None:
        """The experiment is over: pauses() measure up to now, not up to when they are asked for."""
        self.end = self.now()

    def mark(self, label: str) -> float:
        """A membership change ("B joins"); pauses are measured from one mark to the next."""
        t = self.now()
        with self._lock:
            self._marks.append((t, label))
        return t

    # -- reading ---------------------------------------------------------------------------------
    def owned(self, group: str) -> dict[str, frozenset]:
        """What each member of `group` owns now (members that own nothing included)."""
        with self._lock:
            return {m: o for (g, m), o in self._owned.items() if g == group}

    def settled(self, group: str, partitions: int, members: int) -> bool:
        """Every partition owned by exactly one member, spread over `members` members."""
        owned = [o for o in self.owned(group).values() if o]
        flat = [p for o in owned for p in o]
        return len(owned) == members and sorted(flat) == list(range(partitions))

    def wait_settled(self, groups: dict[str, int], partitions: int, timeout: float = 30.0,
                     workers: Iterable[Worker] = ()) -> float:
        """Wait until each group (name -> members) is settled; return the seconds it took. A failed
        worker among `workers` raises its failure at once (WorkerFailed)."""
        start = self.now()
        workers = list(workers)

        def done():
            for w in workers:
                w.raise_if_failed()
            return all(self.settled(g, partitions, n) for g, n in groups.items())

        wait_until(done, timeout,
                   what=lambda: "every group to settle: " + "; ".join(
                       f"{g} ({n} members): " + str({m: sorted(o) for m, o in self.owned(g).items()})
                       for g, n in groups.items()))
        return self.now() - start

    def events(self) -> pd.DataFrame:
        with self._lock:
            return pd.DataFrame(self._events, columns=EVENT_COLUMNS)

    def batches(self) -> pd.DataFrame:
        with self._lock:
            return pd.DataFrame(self._batches, columns=BATCH_COLUMNS)

    def marks(self) -> pd.DataFrame:
        with self._lock:
            return pd.DataFrame(self._marks, columns=["t", "label"])

    def ownership(self) -> pd.DataFrame:
        """One row per stretch of time a member owned a partition: group, partition, member, start, end
        (end: now for what is still owned)."""
        rows, open_ = [], {}
        end_of_time = self.now()
        for e in self.events().itertuples(index=False):
            owned = set(e.owned)
            for (g, m, p), start in list(open_.items()):
                if g == e.group and m == e.member and p not in owned:
                    rows.append((g, p, m, start, e.t))
                    del open_[(g, m, p)]
            for p in owned:
                open_.setdefault((e.group, e.member, p), e.t)
        rows += [(g, p, m, start, end_of_time) for (g, m, p), start in open_.items()]
        return pd.DataFrame(rows, columns=["group", "partition", "member", "start", "end"]).sort_values(
            ["group", "partition", "start"], ignore_index=True)

    def pauses(self) -> pd.DataFrame:
        """For each group and each mark: `group_idle_s`, the longest stretch from the mark to the next
        (or to now) in which the group consumed nothing at all, and `partition_idle_s`, the longest
        one in which some partition got nothing (a partition nobody consumed counts whole)."""
        return pauses(self.batches(), self.marks(), self.now() if self.end is None else self.end, self.events())

    def figure(self, title: str = "Who owned which partition, and when records were consumed"):
        return timeline_figure(self.ownership(), self.batches(), self.marks(), title)


def _longest_gap(times: list[float], start: float, end: float) -> float:
    """The longest stretch of [start, end] with no time in `times`."""
    points = [start] + sorted(t for t in times if start < t < end) + [end]
    return max(b - a for a, b in zip(points, points[1:]))


def pauses(batches: pd.DataFrame, marks: pd.DataFrame, now: float,
           events: pd.DataFrame | None = None) -> pd.DataFrame:
    """See Timeline.pauses: pure, on the frames Timeline returns. With `events`, `revoked` counts the
    partitions taken from members that stayed (not those of a member that left)."""
    rows = []
    bounds = list(marks.itertuples(index=False))
    partitions = sorted(batches["partition"].unique()) if len(batches) else []
    for group in sorted(batches["group"].unique()) if len(batches) else []:
        mine = batches[batches["group"] == group]
        for i, mark in enumerate(bounds):
            end = bounds[i + 1].t if i + 1 < len(bounds) else now
            group_idle = _longest_gap(mine["t"].tolist(), mark.t, end)
            worst, worst_p = 0.0, None
            for p in partitions:
                gap = _longest_gap(mine.loc[mine["partition"] == p, "t"].tolist(), mark.t, end)
                if gap > worst:
                    worst, worst_p = gap, p
            revoked = None
            if events is not None:
                ev = events[(events["group"] == group) & (events["t"] >= mark.t) & (events["t"] < end)]
                leaving = set(ev.loc[ev["kind"] == "left", "member"])
                revoked = int(sum(len(p) for m, k, p in zip(ev["member"], ev["kind"], ev["partitions"])
                                  if k in ("revoked", "lost") and m not in leaving))
            rows.append({"group": group, "change": mark.label, "revoked": revoked,
                         "group_idle_s": round(group_idle, 2), "partition_idle_s": round(worst, 2),
                         "worst_partition": worst_p, "window_s": round(end - mark.t, 2)})
    return pd.DataFrame(rows, columns=["group", "change", "revoked", "group_idle_s", "partition_idle_s",
                                       "worst_partition", "window_s"])


def timeline_figure(ownership: pd.DataFrame, batches: pd.DataFrame, marks: pd.DataFrame, title: str):
    """One row of bars per partition and group (colored by owner), with a dot per 100 ms in which
    that partition's records were consumed, and a dashed line at each membership change."""
    import plotly.graph_objects as go

    fig = go.Figure()
    palette = ["#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D"]
    groups = list(dict.fromkeys(ownership["group"].tolist() + batches["group"].tolist()))
    label = {(g, p): f"{g} · p{p}" for g in groups
             for p in sorted(set(ownership.loc[ownership["group"] == g, "partition"])
                             | set(batches.loc[batches["group"] == g, "partition"]))}
    order = list(label.values())
    members = sorted(set(ownership["member"]))
    colors = {m: palette[i % len(palette)] for i, m in enumerate(members)}
    for m in members:
        own = ownership[ownership["member"] == m]
        fig.add_trace(go.Bar(
            base=own["start"], x=own["end"] - own["start"], orientation="h", name=f"owned by {m}",
            y=[label[(g, p)] for g, p in zip(own["group"], own["partition"])], marker_color=colors[m],
            opacity=0.45, hovertemplate="%{y}: from %{base:.2f} s for %{x:.2f} s<extra>" + m + "</extra>"))
    if len(batches):
        binned = batches.assign(t=(batches["t"] // 0.1) * 0.1).groupby(
            ["group", "partition", "t"], as_index=False)["records"].sum()
        fig.add_trace(go.Scatter(
            x=binned["t"], y=[label[(g, p)] for g, p in zip(binned["group"], binned["partition"])],
            mode="markers", marker=dict(size=4, color="black"), name="records consumed (per 100 ms)",
            customdata=binned["records"], hovertemplate="%{y} at %{x:.1f} s: %{customdata} records<extra></extra>"))
    for mark in marks.itertuples(index=False):
        fig.add_vline(x=mark.t, line_dash="dash", line_color="gray")
        fig.add_annotation(x=mark.t, y=1.02, yref="paper", text=mark.label, showarrow=False,
                           xanchor="left", font=dict(size=11))
    fig.update_layout(title=title, barmode="overlay", height=140 + 26 * len(order),
                      xaxis_title="seconds", legend=dict(orientation="h", y=-0.15),
                      margin=dict(l=10, r=10, t=70, b=10))
    fig.update_yaxes(categoryorder="array", categoryarray=order[::-1])
    return fig


# -- members ---------------------------------------------------------------------------------------
class KafkaPythonMember(Worker):
    """One kafka-python consumer of `group_id` on `topic`, recording into `timeline` until stopped.

    Parameters
    ----------
    topic, group_id : what it subscribes to, and in which group.
    timeline : the Timeline its assignments, revocations and consumed records go to.
    member : its name in the timeline ("A", "B"...).
    label : the timeline's name for the group (default: group_id), so runs of several groups line up.
    **consumer_config : KafkaConsumer settings (partition_assignment_strategy, group_instance_id...).
    """

    def __init__(self, topic: str, group_id: str, timeline: Timeline, member: str,
                 label: str | None = None, **consumer_config):
        super().__init__(f"groups:{group_id}/{member}")
        self.topic, self.group_id, self.timeline, self.member = topic, group_id, timeline, member
        self.label = label or group_id
        self.consumer_config = {"enable_auto_commit": True, "auto_commit_interval_ms": 500,
                                "fetch_max_wait_ms": 100, **consumer_config}
        self.consumed = 0

    def run(self) -> None:
        from kafka import ConsumerRebalanceListener

        from .config import group_consumer
        me = self

        class Recorder(ConsumerRebalanceListener):
            incremental = False

            def on_partitions_revoked(self, revoked):
                me.timeline.revoked(me.label, me.member, [tp.partition for tp in revoked])

            def on_partitions_assigned(self, assigned):
                me.timeline.assigned(me.label, me.member, [tp.partition for tp in assigned], self.incremental)

            def on_partitions_lost(self, lost):
                me.timeline.revoked(me.label, me.member, [tp.partition for tp in lost], kind="lost")

        recorder = Recorder()
        with group_consumer(group_id=self.group_id, **self.consumer_config) as consumer:
            # under a cooperative assignor kafka-python passes only the *added* partitions
            recorder.incremental = any(getattr(s, "name", "") == "cooperative-sticky"
                                       for s in consumer.config["partition_assignment_strategy"])
            consumer.subscribe([self.topic], listener=recorder)
            while not self.stopping.is_set():
                polled = consumer.poll(timeout_ms=100)
                counts = {tp.partition: len(rs) for tp, rs in polled.items()}
                self.consumed += sum(counts.values())
                self.timeline.consumed(self.label, self.member, counts)
        self.timeline.left(self.label, self.member)


class ConfluentMember(Worker):
    """One confluent-kafka consumer of `group_id` on `topic`, recording into `timeline` until stopped.

    Parameters
    ----------
    topic, group_id, timeline, member, label : as for KafkaPythonMember.
    protocol : "consumer" (KIP-848, the broker assigns) or "classic".
    **config : more librdkafka settings, in its names ("partition.assignment.strategy"...).
    """

    def __init__(self, topic: str, group_id: str, timeline: Timeline, member: str, protocol: str = "consumer",
                 label: str | None = None, **config):
        super().__init__(f"groups:{group_id}/{member}")
        self.topic, self.group_id, self.timeline, self.member = topic, group_id, timeline, member
        self.label = label or group_id
        self.config = confluent_config(**{"group.id": group_id, "group.protocol": protocol,
                                          "auto.offset.reset": "earliest", "enable.auto.commit": True,
                                          "auto.commit.interval.ms": 500, "fetch.wait.max.ms": 100, **config})
        self.consumed = 0

    def run(self) -> None:
        from confluent_kafka import Consumer
        consumer = Consumer(self.config)
        # KIP-848 and the cooperative-sticky assignor hand over added partitions only
        incremental = (self.config["group.protocol"] == "consumer"
                       or "cooperative" in str(self.config.get("partition.assignment.strategy", "")))
        try:
            def on_assign(c, partitions):
                self.timeline.assigned(self.label, self.member, [tp.partition for tp in partitions], incremental)

            def on_revoke(c, partitions):
                self.timeline.revoked(self.label, self.member, [tp.partition for tp in partitions])

            def on_lost(c, partitions):
                self.timeline.revoked(self.label, self.member, [tp.partition for tp in partitions], kind="lost")

            consumer.subscribe([self.topic], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
            while not self.stopping.is_set():
                counts: dict[int, int] = {}
                for msg in consumer.consume(num_messages=500, timeout=0.1):
                    if msg.error():
                        if msg.error().fatal():   # e.g. a protocol the broker refuses: fail, do not spin
                            raise RuntimeError(f"{self.name}: {msg.error()}")
                        continue          # partition EOF and transient errors: librdkafka retries
                    counts[msg.partition()] = counts.get(msg.partition(), 0) + 1
                self.consumed += sum(counts.values())
                self.timeline.consumed(self.label, self.member, counts)
        finally:
            consumer.close()               # leaves the group (its partitions are revoked first)
            self.timeline.left(self.label, self.member)


class ShareMember(Worker):
    """One confluent-kafka ShareConsumer of share group `group_id` on `topic` (KIP-932), acknowledging
    each record itself; it keeps (value, partition, offset, delivery_count, decision) in `log` until stopped.

    Parameters
    ----------
    topic, group_id : what it reads, and in which share group.
    member : its name in `log`.
    decide : decide(value, delivery_count) -> "accept" | "release" (deliver again) | "reject" (never again).
    work_s : seconds of "processing" per record before it decides.
    **config : more librdkafka settings, in its names.
    """

    def __init__(self, topic: str, group_id: str, member: str,
                 decide: Callable[[bytes, int], str] = lambda value, count: "accept",
                 work_s: float = 0.0, **config):
        super().__init__(f"share:{group_id}/{member}")
        self.topic, self.member, self.decide, self.work_s = topic, member, decide, work_s
        self.config = confluent_config(**{"group.id": group_id, "share.acknowledgement.mode": "explicit",
                                          **config})
        self.log: list[dict] = []

    def run(self) -> None:
        from confluent_kafka import AcknowledgeType, ShareConsumer
        kinds = {"accept": AcknowledgeType.ACCEPT, "release": AcknowledgeType.RELEASE,
                 "reject": AcknowledgeType.REJECT}
        consumer = ShareConsumer(self.config)
        try:
            consumer.subscribe([self.topic])
            while not self.stopping.is_set():
                messages = [m for m in consumer.poll(0.2) if m.error() is None]
                for m in messages:
                    if self.stopping.is_set():
                        decision = "release"         # stopping: hand it back at once
                    else:
                        time.sleep(self.work_s)
                        decision = self.decide(m.value(), m.delivery_count())
                    consumer.acknowledge(m, kinds[decision])
                    self.log.append({"member": self.member, "value": m.value().decode(), "partition": m.partition(),
                                     "offset": m.offset(), "delivery_count": m.delivery_count(),
                                     "decision": decision})
                if messages:
                    consumer.commit_sync(10)
        finally:
            consumer.close()


# -- scenarios ---------------------------------------------------------------------------------------
CHANGES = (("A joins", "A", None, 1), ("no change", None, None, 1), ("B joins", "B", None, 2),
           ("C joins", "C", None, 3), ("B leaves", None, "B", 2))


def run_changes(groups: dict[str, Callable[[str, Timeline], Worker]], partitions: int, hold: float = 1.5,
                changes=CHANGES, timeout: float = 30.0) -> Timeline:
    """Make the same membership changes in every group at the same moments and record them.

    `groups` maps a group's label to a function (member name, timeline) -> an unstarted member that
    records under that label. `changes`: (label, member to add, member to remove, members after).
    After each change it waits (up to `timeout` s, else TimeoutError) until every group is settled,
    then `hold` more seconds. Every member is stopped at the end, whatever happened."""
    timeline = Timeline()
    members: dict[str, dict[str, Worker]] = {g: {} for g in groups}
    try:
        for label, add, remove, after in changes:
            timeline.mark(label)
            for g, make in groups.items():
                if add:
                    members[g][add] = make(add, timeline).start()
                if remove:
                    members[g].pop(remove).stop()
            timeline.wait_settled({g: after for g in groups}, partitions, timeout,
                                  workers=[m for ms in members.values() for m in ms.values()])
            time.sleep(hold)
        timeline.finish()
    finally:
        for ms in members.values():
            for m in ms.values():
                m.stop()
    return timeline


def handover(topic: str, group_id: str, listener_class, timeout: float = 30.0) -> dict:
    """The commit-on-revoke experiment. A kafka-python consumer in this thread, subscribed with
    `listener_class(consumer, processed)` as its rebalance listener, reads every record of `topic`
    and commits nothing itself: `processed` maps each TopicPartition to the next offset to process.
    Then a second member ("newcomer") joins and this consumer polls on until it has handed a
    partition over. Returns processed, committed (the group's offsets after the handover, None where
    nothing was committed), moved (the partitions the newcomer took) and reread (how many records
    the newcomer read again: 0 when the listener committed what was processed).

    A listener that raises (for one, by calling a blocking consumer method such as commit(), which
    kafka-python 3.0.12 refuses inside a listener) is let through the handover, as if it had committed
    nothing, and its first error is then raised here as ListenerFailed (the original as __cause__)."""
    from kafka import TopicPartition

    from .config import group_consumer
    from .explore import partition_count

    parts = [TopicPartition(topic, p) for p in range(partition_count(topic))]
    processed: dict = {}
    errors: list[BaseException] = []
    consumer = group_consumer(group_id=group_id, heartbeat_interval_ms=500)
    newcomer = None
    try:
        ends = consumer.end_offsets(parts)
        consumer.subscribe([topic], listener=_guarded(listener_class(consumer, processed), errors))

        def poll() -> bool:
            for tp, records in consumer.poll(timeout_ms=200).items():
                processed[tp] = records[-1].offset + 1
            return True

        wait_until(lambda: poll() and all(processed.get(tp, 0) >= ends[tp] for tp in parts), timeout,
                   what=lambda: f"the first consumer to read all of {topic} (processed so far: {processed})")
        timeline = Timeline()
        newcomer = KafkaPythonMember(topic, group_id, timeline, "newcomer", enable_auto_commit=False,
                                     heartbeat_interval_ms=500).start()

        def handed_over() -> bool:
            newcomer.raise_if_failed()
            poll()
            theirs = timeline.owned(group_id).get("newcomer", frozenset())
            mine = {tp.partition for tp in consumer.assignment()}
            return bool(theirs) and sorted(theirs | mine) == list(range(len(parts))) and not theirs & mine

        wait_until(handed_over, timeout, what="the newcomer to take over partitions")
        moved = sorted(timeline.owned(group_id)["newcomer"])
        committed = {tp: consumer.committed(tp) for tp in parts}
        expected = sum(ends[tp] - (committed[tp] or 0) for tp in parts if tp.partition in moved)
        wait_until(lambda: newcomer.consumed >= expected, timeout,
                   what=lambda: f"the newcomer to read the {expected} uncommitted records ({newcomer.consumed} so far)")
        time.sleep(0.3)                      # anything beyond what was expected would show up here
        if errors:
            raise ListenerFailed(f"the rebalance listener raised {type(errors[0]).__name__}: {errors[0]}") \
                from errors[0]
        return {"processed": {tp.partition: o for tp, o in processed.items()},
                "committed": {tp.partition: o for tp, o in committed.items()},
                "moved": moved, "reread": newcomer.consumed}
    finally:
        if newcomer is not None:
            newcomer.stop()
        consumer.close()


class ListenerFailed(RuntimeError):
    """A rebalance listener raised during `handover`; the original error is the __cause__."""


def _guarded(listener, errors: list):
    """`listener` (sync or async methods) behind an async listener that keeps its errors in `errors`
    instead of failing the consumer's poll() mid-rebalance, which would leave the group waiting
    for this member until its session times out."""
    import inspect

    from kafka import AsyncConsumerRebalanceListener

    class Guard(AsyncConsumerRebalanceListener):
        async def _call(self, name, partitions):
            try:
                result = getattr(listener, name)(partitions)
                if inspect.isawaitable(result):
                    await result
            except Exception as e:         # kept, raised by handover() once the group has settled
                errors.append(e)

        async def on_partitions_revoked(self, revoked):
            await self._call("on_partitions_revoked", revoked)

        async def on_partitions_assigned(self, assigned):
            await self._call("on_partitions_assigned", assigned)

    return Guard()
