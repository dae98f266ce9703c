"""Lag that hides nothing: a partition of the group's topics with no commit yet is listed, its lag
counted from the log start, in lag(), LagMonitor and LagChart; checked against librdkafka's count."""
import uuid

import pandas as pd
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

import kafkalab
from kafkalab import LagChart, LagMonitor, stop_all, wait_until
from kafkalab.lagwatch import NO_COMMIT

pytestmark = pytest.mark.integration

PER_PARTITION = {0: 325, 1: 337, 2: 338}          # 1,000 records on 3 partitions
READ = {1: 337, 2: 263}                           # the group reads 600 of them and commits; none of partition 0


@pytest.fixture(autouse=True)
def clean_registry():
    yield
    stop_all()


def topic_with_records(partitions=PER_PARTITION):
    topic = f"lag-{uuid.uuid4().hex[:8]}"
    with KafkaAdminClient(**kafkalab.client_config()) as admin:
        admin.create_topics({topic: {"num_partitions": len(partitions), "replication_factor": 1}},
                            wait_for_metadata=True)
    with KafkaProducer(**kafkalab.client_config()) as p:
        for partition, n in partitions.items():
            for i in range(n):
                p.send(topic, value=f"{partition}-{i}".encode(), partition=partition)
    return topic


def read_and_commit(topic, group, counts=READ):
    """Read `counts` records from the start of each partition as `group`, then commit just those."""
    with KafkaConsumer(**kafkalab.client_config(group_id=group, enable_auto_commit=False)) as c:
        parts = [TopicPartition(topic, p) for p in counts]
        c.assign(parts)
        c.seek_to_beginning(*parts)
        seen = dict.fromkeys(counts, 0)
        while any(seen[p] < n for p, n in counts.items()):
            for tp, records in c.poll(timeout_ms=1000).items():
                seen[tp.partition] += len(records)
        c.commit({TopicPartition(topic, p): OffsetAndMetadata(n, "", -1) for p, n in counts.items()})


def librdkafka_lag(topic, group, partitions):
    """What confluent-kafka counts: end - committed, or end - log start where nothing is committed."""
    confluent = pytest.importorskip("confluent_kafka")
    c = confluent.Consumer({"bootstrap.servers": kafkalab.bootstrap(), "group.id": group,
                            "enable.auto.commit": False})
    try:
        committed = c.committed([confluent.TopicPartition(topic, p) for p in partitions], timeout=10)
        lag = {}
        for tp in committed:
            low, high = c.get_watermark_offsets(confluent.TopicPartition(topic, tp.partition), timeout=10)
            lag[tp.partition] = high - (tp.offset if tp.offset >= 0 else low)
        return lag
    finally:
        c.close()


def test_lag_lists_a_partition_without_commit_and_agrees_with_librdkafka(broker):
    topic, group = topic_with_records(), f"g-{uuid.uuid4().hex[:6]}"
    read_and_commit(topic, group)
    lag = kafkalab.lag(group)
    assert lag["partition"].tolist() == [0, 1, 2] and lag["lag"].tolist() == [325, 0, 75]
    assert lag["lag"].sum() == 400 == sum(librdkafka_lag(topic, group, PER_PARTITION).values())
    assert lag["committed"].dtype == "Int64" and lag["committed"].isna().tolist() == [True, False, False]
    assert lag["note"].tolist() == [NO_COMMIT, "", ""]


def test_lag_counts_from_the_log_start_after_deleted_records(broker):
    topic, group = topic_with_records(), f"g-{uuid.uuid4().hex[:6]}"
    read_and_commit(topic, group)
    with KafkaAdminClient(**kafkalab.client_config()) as admin:
        admin.delete_records({TopicPartition(topic, 0): 100})
    lag = kafkalab.lag(group).set_index("partition")
    assert lag.loc[0, "lag"] == 225 == librdkafka_lag(topic, group, [0])[0]


def test_an_active_member_without_any_commit_shows_its_topics(broker):
    """No commit at all: the topics come from the member's assignment."""
    topic, group = topic_with_records({0: 10, 1: 20}), f"g-{uuid.uuid4().hex[:6]}"
    with kafkalab.config.group_consumer(topic, group_id=group) as member:
        def assigned():
            member.poll(timeout_ms=200, max_records=1)     # joins the group; commits nothing
            return bool(member.assignment())
        wait_until(assigned, 30, what="the member to be assigned its partitions")
        lag = kafkalab.lag(group)
    assert lag["partition"].tolist() == [0, 1] and lag["lag"].tolist() == [10, 20]
    assert lag["committed"].isna().all()


def test_lag_monitor_and_chart_judge_a_partition_without_commit(broker):
    topic, group = topic_with_records(), f"g-{uuid.uuid4().hex[:6]}"
    read_and_commit(topic, group)
    monitor = LagMonitor(group, interval=0.3).start()
    chart = LagChart(group, interval=0.3, fps=5).start()
    wait_until(lambda: len(monitor.history) >= 3 and chart.refreshes > 2 and len(chart.monitor.history) >= 3, 30,
               what="three samples from the monitor and the chart")
    report = monitor.report()
    assert report["partition"].tolist() == [0, 1, 2] and report["lag"].sum() == 400
    no_commit = report.set_index("partition").loc[0]
    assert pd.isna(no_commit["committed"]) and no_commit["lag"] == 325 and no_commit["lag_seconds"] > 0
    assert no_commit["status"] == "STOP" and no_commit["rule"].endswith(NO_COMMIT)  # nobody in the group
    chart.refresh()
    assert "none yet" in chart.table.value and NO_COMMIT.split(":")[0] in chart.table.value
    assert sorted(t.name for t in chart.figure.data) == [f"{topic}[{p}]" for p in range(3)]
    assert chart.figure.data[0].y[-1] == 325

