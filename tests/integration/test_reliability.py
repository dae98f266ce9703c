"""Kafka's promises under crashes, judged as Kafka's own system tests judge them: by the
records the producer was told were written (acknowledged), never by how many were sent.
Each test runs its own single-node broker, so the session broker is never killed."""
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

from kafkalab.broker.local import LocalBroker
from kafkalab.durability import read_all
from kafkalab.runtime import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(lab_home, request):
    broker = LocalBroker(home=lab_home / f"reliability-{request.node.name[:40]}")
    broker.up(timeout=120)
    yield broker
    broker.down()


def create(bootstrap, topic, partitions=1):
    with KafkaAdminClient(bootstrap_servers=bootstrap) as admin:
        admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}},
                            wait_for_metadata=True)


def test_idempotent_acks_all_survives_three_kill_9s_exactly_once(broker):
    create(broker.bootstrap, "crash-safe")
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", enable_idempotence=True,
                             linger_ms=5, delivery_timeout_ms=120_000, request_timeout_ms=10_000,
                             max_block_ms=60_000)
    futures, kills = [], 0
    for i in range(3000):
        futures.append((i, producer.send("crash-safe", str(i).encode())))
        if i in (600, 1400, 2200):        # mid-stream: batches are in flight when it dies
            broker.kill()
            kills += 1
            broker.up(timeout=120)        # the same port: the producer reconnects and retries
        elif i % 100 == 0:
            time.sleep(0.02)
    producer.flush(timeout=120)
    acked = [i for i, f in futures if f.succeeded()]
    failed = [(i, repr(f.exception)) for i, f in futures if f.failed()]
    producer.close()
    seen = read_all("crash-safe", {"bootstrap_servers": broker.bootstrap}, timeout=60)
    missing = sorted(set(acked) - set(seen))
    print(f"kill -9 x{kills}: {len(futures)} sent, {len(acked)} acknowledged, {len(failed)} failed, "
          f"{len(seen)} read, {len(seen) - len(set(seen))} duplicates, {len(missing)} acknowledged but missing")
    assert kills == 3 and len(acked) > 0
    assert not missing, f"acknowledged records lost: {missing[:10]}"
    assert len(seen) == len(set(seen)), "the idempotent producer wrote a record twice"


def test_a_group_resumes_from_its_commits_after_a_broker_crash(broker):
    create(broker.bootstrap, "resume", partitions=2)
    with KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all") as producer:
        for i in range(2000):
            producer.send("resume", str(i).encode(), partition=i % 2)
    processed, uncommitted = [], []
    config = dict(bootstrap_servers=broker.bootstrap, group_id="resume-group", enable_auto_commit=False,
                  auto_offset_reset="earliest", max_poll_records=100, session_timeout_ms=10_000)
    consumer = KafkaConsumer("resume", **config)
    while len(processed) < 900:
        batch = [int(r.value) for records in consumer.poll(timeout_ms=1000).values() for r in records]
        processed += batch
        if len(processed) < 700:
            consumer.commit()              # at-least-once: commit after processing
        else:
            uncommitted += batch           # processed, then the crash comes before the commit
    broker.kill()
    consumer.close(autocommit=False)       # this member is gone with its uncommitted work
    broker.up(timeout=120)
    consumer = KafkaConsumer("resume", **config)
    wait_until(lambda: processed.extend(int(r.value) for records in consumer.poll(timeout_ms=1000).values()
                                        for r in records) or len(set(processed)) >= 2000,
               60, interval=0, what=lambda: f"all 2000 records after the restart ({len(set(processed))} so far)")
    consumer.commit()
    consumer.close()
    duplicates = len(processed) - len(set(processed))
    print(f"2000 records, {len(uncommitted)} processed but not committed at the crash, "
          f"{duplicates} processed twice after the restart")
    assert set(processed) == set(range(2000)), "a gap: records were skipped"
    assert duplicates == len(uncommitted), "duplicates must be exactly the uncommitted window"
