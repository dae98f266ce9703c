"""The priority task queue's workers on the real broker: what a rebalance must not lose."""
import json
import uuid

import pytest
from kafka import KafkaProducer

import kafkalab
from kafkalab.usecases.tasks import PRIORITIES, Ledger, RetryPolicy, TaskWorker, Topics

pytestmark = pytest.mark.integration


def test_a_worker_that_keeps_a_partition_through_a_rebalance_loses_none_of_its_buffered_tasks(broker, tmp_path):
    # kafka-python 3 (like Java's client) keeps the position of a partition assigned before and
    # after a rebalance. A worker that buffers records and drops those of revoked partitions must
    # seek back to them when it gets a partition back. Without that fix this test fails in about half
    # its runs (when the first worker had buffered records of the partition it keeps), losing ~90-120.
    topics = Topics(f"tq-{uuid.uuid4().hex[:6]}")
    for p in PRIORITIES:
        kafkalab.recreate_topic(topics.priority(p), partitions=2)
    kafkalab.recreate_topic(topics.retry)
    kafkalab.recreate_topic(topics.dlq)
    ledger = Ledger(tmp_path / "ledger.db")
    with KafkaProducer(**kafkalab.client_config()) as producer:
        for i in range(400):   # slow tasks: the first worker's buffer is full when the second joins
            task = {"id": f"task-{i}", "priority": "low", "attempts": 0, "poison": False, "work_ms": 20}
            producer.send(topics.priority("low"), json.dumps(task).encode(), key=task["id"].encode())
            ledger.submitted(task["id"], "low")
    group, policy, weights = f"tq-{uuid.uuid4().hex[:6]}", RetryPolicy(), {"high": 6, "medium": 3, "low": 1}
    first = TaskWorker(topics, group, ledger, weights, policy, {}, name="tq-first").start()
    try:
        kafkalab.wait_until(lambda: first.done["low"] >= 20, 30, what="the first worker to be busy")
        second = TaskWorker(topics, group, ledger, weights, policy, {}, name="tq-second", seed=1).start()
        kafkalab.wait_until(lambda: ledger.audit()["lost"] == 0, 60, what=lambda: (
            f"every task to be done ({ledger.audit()}; first {first.done}, second {second.done}, "
            f"failures {first.failure}, {second.failure})"))
        assert second.done["low"] > 0, "the second worker took part"
        assert ledger.audit()["completed"] == 400
    finally:
        kafkalab.stop_all()
        ledger.close()
