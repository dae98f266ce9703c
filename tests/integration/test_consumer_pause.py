"""pause() then resume() must bring a partition back: guards kafkalab.compat's fix of a
kafka-python 3.0.12 fetcher bug (parked records of a resumed partition never returned)."""
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

import kafkalab

pytestmark = pytest.mark.integration


def test_a_partition_paused_mid_batch_delivers_everything_after_resume(broker):
    topic = kafkalab.recreate_topic("pause-resume", partitions=2)
    with KafkaProducer(**kafkalab.client_config()) as producer:
        for i in range(300):
            producer.send(topic, str(i).encode(), partition=0)
        for i in range(50):
            producer.send(topic, str(i).encode(), partition=1)
    a, b = TopicPartition(topic, 0), TopicPartition(topic, 1)
    got = {a: [], b: []}
    with KafkaConsumer(**kafkalab.client_config(enable_auto_commit=False)) as consumer:
        consumer.assign([a, b])
        consumer.seek_to_beginning()

        def read():
            for tp, records in consumer.poll(timeout_ms=200, max_records=10).items():
                got[tp] += [int(r.value) for r in records]

        kafkalab.wait_until(lambda: read() or got[a], 20, interval=0, what="a first batch of partition 0")
        consumer.pause(a)                                   # with fetched records of a still unread
        kafkalab.wait_until(lambda: read() or len(got[b]) == 50, 20, interval=0, what="all of partition 1")
        consumer.resume(a)
        kafkalab.wait_until(lambda: read() or len(got[a]) == 300, 20, interval=0,
                            what=lambda: f"partition 0 to deliver again after resume ({len(got[a])} of 300)")
    assert got[a] == list(range(300)) and got[b] == list(range(50))
