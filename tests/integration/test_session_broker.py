"""kafkalab's helpers and a second client library against the real session broker."""
import json
import subprocess
import sys
import time
import uuid

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

import kafkalab

pytestmark = pytest.mark.integration


def fresh(name, create=True):
    """A new topic name (created, unless asked not to: the lab broker does not auto-create)."""
    topic = f"{name}-{uuid.uuid4().hex[:8]}"
    if create:
        kafkalab.recreate_topic(topic)
    return topic


def test_bootstrap_points_at_the_session_broker(broker):
    assert kafkalab.bootstrap() == broker.bootstrap
    assert broker.status()["running"] is True


def test_topics_peek_and_lag_describe_real_data(broker):
    topic, group = fresh("explore"), fresh("g", create=False)
    with KafkaProducer(**kafkalab.client_config()) as p:
        for i in range(30):
            p.send(topic, key=f"k{i % 3}".encode(), value=json.dumps({"i": i}).encode(),
                   headers=[("source", b"test")])
    row = kafkalab.topics().set_index("topic").loc[topic]
    assert (row["partitions"], row["records"]) == (1, 30)

    last = kafkalab.peek(topic, n=5)
    assert list(last.columns) == ["partition", "offset", "timestamp", "key", "value", "headers"]
    assert list(last["offset"]) == [25, 26, 27, 28, 29]
    assert last["value"].iloc[-1] == {"i": 29} and last["headers"].iloc[0] == {"source": "test"}
    assert list(kafkalab.peek(topic, n=2, from_end=False)["offset"]) == [0, 1]

    with KafkaConsumer(topic, **kafkalab.client_config(
            group_id=group, auto_offset_reset="earliest", enable_auto_commit=False)) as c:
        seen = 0
        while seen < 12:
            seen += sum(len(r) for r in c.poll(1000, max_records=12 - seen).values())
        c.commit()
    lag = kafkalab.lag(group)
    assert lag.to_dict("records") == [{"topic": topic, "partition": 0, "committed": 12,
                                       "end_offset": 30, "lag": 18, "note": ""}]


def test_lag_of_an_unknown_group_is_empty(broker):
    lag = kafkalab.lag(fresh("nobody", create=False))
    assert lag.empty and list(lag.columns) == ["topic", "partition", "committed", "end_offset", "lag", "note"]


def test_peek_takes_the_newest_records_across_partitions(broker):
    topic = fresh("spread", create=False)
    with KafkaProducer(**kafkalab.client_config()) as p:
        with KafkaAdminClient(**kafkalab.client_config()) as admin:
            admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}},
                                wait_for_metadata=True)
        # an hour ago: within retention (the lab broker checks retention every second, and deletes
        # records older than 7 days, a fixed date in 2023 among them, within a second of their write)
        base = (int(time.time()) - 3600) * 1000
        for i in range(12):
            p.send(topic, value=f"v{i}".encode(), partition=i % 3, timestamp_ms=base + i)
    assert list(kafkalab.peek(topic, n=4)["value"]) == ["v8", "v9", "v10", "v11"]
    assert list(kafkalab.peek(topic, n=4, from_end=False)["value"]) == ["v0", "v1", "v2", "v3"]


def test_peek_unknown_topic_is_a_clear_error(broker):
    with KafkaProducer(**kafkalab.client_config()):
        pass
    with pytest.raises(kafkalab.TopicNotFound, match="does not exist.*recreate_topic"):
        kafkalab.peek(fresh("missing", create=False), timeout=2)


def test_a_different_client_library_can_produce_and_consume(broker):
    """librdkafka (confluent-kafka), not kafka-python: the broker is real Kafka."""
    confluent = pytest.importorskip("confluent_kafka")
    topic = fresh("librdkafka")
    p = confluent.Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(10):
        p.produce(topic, key=str(i), value=f"v{i}")
    assert p.flush(15) == 0
    c = confluent.Consumer({"bootstrap.servers": broker.bootstrap, "group.id": fresh("rd", create=False),
                            "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    values = []
    try:
        for _ in range(60):
            msg = c.poll(0.5)
            if msg is not None and msg.error() is None:
                values.append(msg.value().decode())
            if len(values) == 10:
                break
    finally:
        c.close()
    assert values == [f"v{i}" for i in range(10)]
    # and kafka-python sees the same records
    assert list(kafkalab.peek(topic, n=10)["value"]) == values


def test_cli_status_json(broker, lab_home):
    out = subprocess.run([sys.executable, "-m", "kafkalab.cli", "--home", str(broker.home),
                          "status", "--json"], capture_output=True, text=True, check=True)
    status = json.loads(out.stdout)
    state = broker.state()
    assert status["running"] is True and status["profile"] == "single"
    assert status["bootstrap"] == f"127.0.0.1:{state.port}"
    assert status["data_dir"] == str(broker.data_dir)
    assert status["nodes"] == [{"id": 1, "pid": state.pid, "port": state.port, "alive": True}]


def test_recreate_topic_empties_it_and_applies_configs(broker):
    from kafka.admin import ConfigResource, ConfigResourceType
    name = fresh("again", create=False)
    kafkalab.recreate_topic(name, partitions=2)
    with KafkaProducer(**kafkalab.client_config()) as p:
        for i in range(5):
            p.send(name, b"x", partition=i % 2)
    assert kafkalab.topics().set_index("topic").loc[name, "records"] == 5
    kafkalab.recreate_topic(name, partitions=3, retention_ms=60000)
    row = kafkalab.topics().set_index("topic").loc[name]
    assert (row["partitions"], row["records"]) == (3, 0)
    with KafkaAdminClient(**kafkalab.client_config()) as admin:
        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
    assert configs["topic"][name]["retention.ms"]["value"] == "60000"


def test_the_lab_broker_does_not_create_topics_on_first_use(broker):
    from kafka.errors import KafkaTimeoutError
    name = fresh("typo", create=False)
    with KafkaProducer(**kafkalab.client_config(), max_block_ms=2000) as p:
        with pytest.raises(KafkaTimeoutError):
            p.send(name, b"x")
    assert name not in set(kafkalab.topics()["topic"])
