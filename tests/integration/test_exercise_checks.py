"""Exercise checks fail on the mistake they target, and say why: each check cell is run on a wrong answer."""
import json
import pathlib
import shutil
import tempfile
import time

import nbformat
import pandas as pd
import pytest
from kafka import (AsyncConsumerRebalanceListener, ConsumerRebalanceListener, JsonSerializer, KafkaConsumer,
                   KafkaProducer, OffsetAndMetadata)

import kafkalab
from kafkalab.groups import ListenerFailed, handover

pytestmark = pytest.mark.integration
NOTEBOOKS = __import__("pathlib").Path(__file__).resolve().parents[2] / "notebooks"


def _cells(notebook: str) -> list:
    return nbformat.read(NOTEBOOKS / notebook, as_version=4).cells


def check_cell(notebook: str, match: str | None = None) -> str:
    """The check cell of an exercise: the cell right after its solution cell (tagged `solution`); with
    `match`, the first solution whose source contains that text (a notebook with several exercises)."""
    cells = _cells(notebook)
    solution = next(i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])
                    and (match is None or match in c.source))
    return cells[solution + 1].source


def solution_cell(notebook: str, match: str | None = None) -> str:
    cells = _cells(notebook)
    return next(c.source for c in cells if "solution" in c.metadata.get("tags", [])
                and (match is None or match in c.source))


def setup_cell(notebook: str, contains: str) -> str:
    """The (only) code cell that contains `contains`: an exercise's setup, run before its check."""
    found = [c.source for c in _cells(notebook) if c.cell_type == "code" and contains in c.source]
    assert len(found) == 1, f"{notebook}: {len(found)} code cells contain {contains!r}"
    return found[0]


def test_03_check_refuses_idempotence_left_to_kafka_pythons_warning(broker):
    kafkalab.recreate_topic("exercise-03", partitions=1)
    namespace = {"kafkalab": kafkalab, "KafkaProducer": KafkaProducer, "TOPIC": "exercise-03",
                 "my_settings": {"acks": 1, "compression_type": "lz4"}}     # the mistake: idempotence not said
    namespace["my_producer"] = KafkaProducer(**kafkalab.client_config(), **namespace["my_settings"])
    assert namespace["my_producer"].config["enable_idempotence"] is False     # what hid it from the old check
    with pytest.raises(AssertionError, match="switches it off itself"):
        exec(check_cell("03_configuration.ipynb"), namespace)
    assert namespace["my_producer"]._closed


def test_10_check_explains_a_loop_that_dies_on_a_tombstone(broker):
    namespace = {"kafkalab": kafkalab, "KafkaProducer": KafkaProducer}
    exec(setup_cell("10_streaming.ipynb", 'recreate_topic("nb10-exercise"'), namespace)
    exec("""
from kafka import KafkaConsumer
def count_by_source(topic):                  # the cheat sheet's deserializer: None.decode() on the tombstone
    counts = {}
    with KafkaConsumer(topic, **kafkalab.client_config(), auto_offset_reset="earliest", consumer_timeout_ms=2000,
                       value_deserializer=lambda m: json.loads(m.decode("utf-8"))) as consumer:
        for message in consumer:
            counts[message.value["source"]] = counts.get(message.value["source"], 0) + 1
    return counts, 0
""", namespace)
    with pytest.raises(AssertionError, match="crashed on the tombstone: AttributeError"):
        exec(check_cell("10_streaming.ipynb", "def count_by_source"), namespace)


def test_11_check_explains_levels_nobody_reads(broker):
    from kafkalab.usecases.logs import LEVELS, level_topic
    namespace = {"kafkalab": kafkalab, "LEVELS": LEVELS, "level_topic": level_topic, "time": time}
    exec(setup_cell("11_log_aggregation.ipynb", 'EX_PREFIX = "nb11-ex"'), namespace)
    exec("""
from kafka import KafkaConsumer
def count_levels(prefix):                    # the cheat sheet's subscription: error, warning and info only
    counts = {}
    with KafkaConsumer(*[level_topic(prefix, lv) for lv in ("ERROR", "WARNING", "INFO")], **kafkalab.client_config(),
                       auto_offset_reset="earliest", consumer_timeout_ms=2000) as consumer:
        for message in consumer:
            level = json.loads(message.value)["level"]
            counts[level] = counts.get(level, 0) + 1
    return counts
""", namespace)
    with pytest.raises(AssertionError, match="found no DEBUG, CRITICAL logs"):
        exec(check_cell("11_log_aggregation.ipynb", "def count_levels"), namespace)


def _task_queue_namespace() -> dict:
    namespace = {"kafkalab": kafkalab, "KafkaProducer": KafkaProducer}
    exec(setup_cell("12_task_queue.ipynb", "EX_TASKS, EX_RETRY, EX_DLQ ="), namespace)
    return namespace


def test_12_check_explains_a_retry_count_that_does_not_travel(broker):
    namespace = _task_queue_namespace()
    exec("""
def handle_failure(producer, record):        # no attempt count in the header: every failure looks like the first
    producer.send(EX_RETRY, record.value, key=record.key).get(timeout=10)
    return "retry"
""", namespace)
    with pytest.raises(AssertionError, match="the third failure goes to the dead-letter topic"):
        exec(check_cell("12_task_queue.ipynb", "def handle_failure"), namespace)


def test_12_check_explains_a_retry_sent_fire_and_forget(broker):
    namespace = _task_queue_namespace()
    exec("""
def handle_failure(producer, record):        # right decision, but returns before the broker has the record
    attempts = int(dict(record.headers or []).get("attempts", b"0")) + 1
    topic = EX_RETRY if attempts < MAX_ATTEMPTS else EX_DLQ
    producer.send(topic, record.value, key=record.key, headers=[("attempts", str(attempts).encode())])
    return "retry" if topic == EX_RETRY else "dead"
""", namespace)
    with pytest.raises(AssertionError, match=r"send\(\) only queues the record"):
        exec(check_cell("12_task_queue.ipynb", "def handle_failure"), namespace)


def test_13_check_explains_events_sent_without_a_key(broker):
    namespace = {"kafkalab": kafkalab, "time": time, "pd": pd}
    exec(setup_cell("13_web_analytics.ipynb", 'recreate_topic("nb13-exercise"'), namespace)
    exec("""
def publish(events):                         # event time right, but no key: each record lands anywhere
    with KafkaProducer(**kafkalab.client_config()) as producer:
        for event in events:
            producer.send(EX_TOPIC, json.dumps(event).encode(), timestamp_ms=int(event["ts"] * 1000))
""", namespace)
    with pytest.raises(AssertionError, match="spread over partitions"):
        exec(check_cell("13_web_analytics.ipynb", "def publish"), namespace)


def _replication_namespace() -> dict:
    from kafkalab.usecases.replication import RegionDB
    return {"kafkalab": kafkalab, "KafkaProducer": KafkaProducer, "RegionDB": RegionDB, "json": json,
            "pathlib": pathlib, "tempfile": tempfile, "shutil": shutil}


def test_14_check_explains_an_outbox_marked_before_the_acknowledgement(broker):
    namespace = _replication_namespace()
    exec(setup_cell("14_replication.ipynb", 'recreate_topic("nb14-outbox"'), namespace)
    exec("""
def publish_outbox(db, producer):            # marks as soon as send() returned: the records are still buffered
    changes = db.pending_changes()
    for ch in changes:
        producer.send(EX_OUTBOX, json.dumps(ch).encode(), key=ch["row"]["id"].encode())
    db.mark_published(changes[-1]["seq"])
    return len(changes)
""", namespace)
    with pytest.raises(AssertionError, match="you marked the outbox published up to seq 3 while EX_OUTBOX held 0"):
        exec(check_cell("14_replication.ipynb", "def publish_outbox"), namespace)


def test_14_conflict_check_names_the_variables_it_reads(broker):
    namespace = _replication_namespace()
    namespace["result"] = [("Ada", "new@example.com", "gold")] * 2      # `outcomes` never stored: not a NameError
    with pytest.raises(AssertionError, match="in `outcomes`"):
        exec(check_cell("14_replication.ipynb", '"vector"'), namespace)


def test_07_check_says_to_flush_before_abort(broker):
    topic = kafkalab.recreate_topic("exercise-07", partitions=1)
    with KafkaProducer(**kafkalab.client_config(), transactional_id="exercise-07",
                       value_serializer=JsonSerializer()) as tx:
        tx.init_transactions()
        tx.begin_transaction()
        tx.send(topic, {"x": 1})
        tx.send(topic, {"x": 2})
        tx.commit_transaction()
        tx.begin_transaction()
        tx.send(topic, {"x": 3})
        tx.abort_transaction()          # the mistake: no flush, so x=3 is dropped in the client, never written
    namespace = {"kafkalab": kafkalab, "KafkaConsumer": KafkaConsumer, "JsonSerializer": JsonSerializer, "EX": topic}
    with pytest.raises(AssertionError, match=r"flush\(\) before abort_transaction\(\)"):
        exec(check_cell("07_patterns.ipynb"), namespace)


def _exercise_09(topic: str, n: int, config: dict) -> dict:
    failures = []
    with KafkaProducer(**kafkalab.client_config(), **config) as producer:
        t0 = time.perf_counter()
        for _ in range(n):
            producer.send(topic, b"x" * 100).add_errback(failures.append)
        producer.flush(timeout=60)
        seconds = time.perf_counter() - t0
    return {"kafkalab": kafkalab, "my_config": config, "failures": failures, "my_seconds": seconds,
            "EX_TOPIC": topic, "N": n}


def test_09_check_refuses_acks_1_for_speed(broker):
    topic = kafkalab.recreate_topic("exercise-09", partitions=2)
    # the mistake: the cheat sheet's "acks for speed", everything else right
    namespace = _exercise_09(topic, 200, {"acks": 1, "linger_ms": 20, "batch_size": 131_072,
                                          "compression_type": "gzip"})
    with pytest.raises(AssertionError, match="switches idempotence off itself"):
        exec(check_cell("09_performance.ipynb"), namespace)


def test_09_check_refuses_a_producer_that_does_not_batch(broker):
    topic = kafkalab.recreate_topic("exercise-09", partitions=2)
    namespace = _exercise_09(topic, 200, {"acks": "all", "compression_type": "gzip"})     # linger_ms left at 0
    with pytest.raises(AssertionError, match="linger_ms=0: constraint 2"):
        exec(check_cell("09_performance.ipynb"), namespace)


def test_09_check_passes_its_solution(broker):
    topic = kafkalab.recreate_topic("exercise-09", partitions=2)
    namespace = {"kafkalab": kafkalab, "KafkaProducer": KafkaProducer, "time": time, "N": 500,
                 "PAYLOAD": b"x" * 150, "EX_TOPIC": topic}
    exec(solution_cell("09_performance.ipynb"), namespace)
    exec(check_cell("09_performance.ipynb"), namespace)


def _latest_state_with(keep_tombstones: bool, decode_none: bool, decode=lambda v: json.loads(v.decode())):
    """A learner's latest_state with one of the mistakes."""
    def latest_state(topic):
        consumer = KafkaConsumer(topic, **kafkalab.client_config(auto_offset_reset="earliest",
                                                                 consumer_timeout_ms=3000))
        state = {}
        try:
            for record in consumer:
                value = decode(record.value) if decode_none or record.value is not None else None
                if value is None and not keep_tombstones:
                    state.pop(record.key.decode(), None)
                else:
                    state[record.key.decode()] = value
        finally:
            consumer.close()
        return state
    return latest_state


@pytest.mark.parametrize("mistake, message", [
    (dict(keep_tombstones=True, decode_none=False), "a tombstone deletes the key"),
    (dict(keep_tombstones=False, decode_none=True), "crashed on a tombstone \\(AttributeError"),
    (dict(keep_tombstones=False, decode_none=True, decode=json.loads), "crashed on a tombstone \\(TypeError"),
])
def test_05b_check_explains_a_tombstone_kept_or_decoded(broker, mistake, message):
    namespace = {"kafkalab": kafkalab, "KafkaProducer": KafkaProducer, "json": json,
                 "latest_state": _latest_state_with(**mistake)}
    with pytest.raises(AssertionError, match=message):
        exec(check_cell("05b_log_lifecycle.ipynb"), namespace)


@pytest.fixture(scope="module")
def namespace_04b(broker):
    topic = kafkalab.recreate_topic("exercise-04b", partitions=2)
    with KafkaProducer(**kafkalab.client_config()) as p:
        for i in range(40):
            p.send(topic, str(i).encode(), partition=i % 2)
    return {"kafkalab": kafkalab, "HANDOVER": topic, "handover": handover, "ListenerFailed": ListenerFailed,
            "uuid": __import__("uuid"), "OffsetAndMetadata": OffsetAndMetadata,
            "AsyncConsumerRebalanceListener": AsyncConsumerRebalanceListener}


class NoCommit(AsyncConsumerRebalanceListener):
    def __init__(self, consumer, processed):
        self.consumer, self.processed = consumer, processed

    async def on_partitions_revoked(self, revoked):
        pass

    async def on_partitions_assigned(self, assigned):
        pass


class BlockingCommit(ConsumerRebalanceListener):
    def __init__(self, consumer, processed):
        self.consumer, self.processed = consumer, processed

    def on_partitions_revoked(self, revoked):
        self.consumer.commit({tp: OffsetAndMetadata(self.processed[tp], "", -1)
                              for tp in revoked if tp in self.processed})

    def on_partitions_assigned(self, assigned):
        pass


def test_04b_check_says_nothing_was_committed_on_revoke(namespace_04b):
    with pytest.raises(AssertionError, match="nothing was committed for partition"):
        exec(check_cell("04b_consumer_groups.ipynb"), {**namespace_04b, "CommitOnRevoke": NoCommit})


def test_04b_check_explains_a_blocking_commit_inside_the_listener(namespace_04b):
    with pytest.raises(AssertionError, match="AsyncConsumerRebalanceListener"):
        exec(check_cell("04b_consumer_groups.ipynb"), {**namespace_04b, "CommitOnRevoke": BlockingCommit})


def test_04b_check_passes_the_solution(namespace_04b):
    solution, check = solution_cell("04b_consumer_groups.ipynb"), check_cell("04b_consumer_groups.ipynb")
    ns = dict(namespace_04b)
    exec(solution, ns)
    exec(check, ns)
