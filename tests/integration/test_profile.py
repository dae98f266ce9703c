"""kafkalab.profile() on a topic whose content the test made: every table checked against it."""
import json
import time
import uuid

import pytest
from kafka import KafkaProducer

import kafkalab

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def made():
    """300 records: partition 0 holds 200 (skew); key "hot" on half; 10 tombstones; headers on 30;
    JSON with a nested object, a field missing from some and null in others."""
    topic = kafkalab.recreate_topic(f"profile-{uuid.uuid4().hex[:8]}", partitions=3)
    base = (int(time.time()) - 600) * 1000
    with KafkaProducer(**kafkalab.client_config()) as p:
        for i in range(300):
            partition = 0 if i < 200 else 1 + i % 2
            key = "hot" if i % 2 == 0 else f"k{i}"
            if i % 30 == 29:
                value = None
            else:
                body = {"id": i, "user": {"country": "FR" if i % 3 else "DE"}}
                if i % 4:
                    body["amount"] = None if i % 4 == 1 else i * 1.5
                value = json.dumps(body).encode()
            p.send(topic, partition=partition, key=key.encode(), value=value, timestamp_ms=base + i * 1000,
                   headers=[("trace", b"x")] if i % 10 == 0 else None)
        p.flush()
    return topic


def test_profile_of_the_whole_topic_matches_what_was_written(made):
    prof = kafkalab.profile(made, sample=1000)
    s = prof.summary
    assert (s["records"], s["sampled"], s["partitions"]) == (300, 300, 3)
    assert s["tombstones"] == 10 and s["json_objects"] == 290 and s["header_keys"] == "trace (30)"
    assert s["timestamp_type"] == "CreateTime" and (s["last_timestamp"] - s["first_timestamp"]).total_seconds() == 299
    parts = prof.partitions.set_index("partition")
    assert parts["records"].tolist() == [200, 50, 50] and parts["share"].tolist() == [0.667, 0.167, 0.167]
    assert (parts["bytes_on_disk"] > 0).all()
    top = prof.keys.iloc[0]
    assert (top["key"], top["records"], top["share"]) == ("hot", 150, 0.5) and s["distinct_keys"] == 151
    schema = prof.schema.set_index("field")
    assert schema.loc["id", "types"] == "int" and schema.loc["user", "types"] == "object"
    assert schema.loc["user.country", "missing_share"] == 0
    amount = schema.loc["amount"]
    assert amount["types"] == "float" and amount["present"] == sum(1 for i in range(300) if i % 30 != 29 and i % 4)
    assert amount["null_share"] == round(sum(1 for i in range(300) if i % 30 != 29 and i % 4 == 1) / 290, 4)
    assert prof.rate["records"].sum() == 300
    sizes = prof.sizes.set_index("of")
    assert sizes.loc["key", "max"] == max(len(f"k{i}") for i in range(1, 300, 2))
    fig = prof.figure()
    assert list(fig.data[0].y) == [200, 50, 50]


def test_a_sample_takes_the_newest_records_of_each_partition_by_size(made):
    prof = kafkalab.profile(made, sample=30)
    assert prof.partitions.set_index("partition")["sample_records"].tolist() == [20, 5, 5]
    newest = prof.sample.groupby("partition")["offset"].min().tolist()
    assert newest == [180, 45, 45]


def test_bad_sample_and_unknown_topic_fail_clearly():
    with pytest.raises(ValueError, match="sample"):
        kafkalab.profile("any", sample=0)
    with pytest.raises(kafkalab.TopicNotFound):
        kafkalab.profile(f"missing-{uuid.uuid4().hex[:6]}")
