"""kafkalab.segments: a partition's segment files, read from the log directory the broker reports."""
import pytest
from kafka import KafkaProducer

import kafkalab
from kafkalab.explore import TopicNotFound

pytestmark = pytest.mark.integration


def test_segments_lists_the_files_of_a_partition_with_one_active_segment(broker):
    topic = kafkalab.recreate_topic("segments-files", partitions=2, segment_bytes=1024 * 1024)
    with KafkaProducer(**kafkalab.client_config(linger_ms=20)) as producer:
        for i in range(260):                                   # about 2.6 MiB into partition 1
            producer.send(topic, value=b"z" * 10_000, partition=1)
    files = kafkalab.segments(topic, partition=1)
    assert len(files) >= 3, files                              # 1 MiB segments: at least three
    assert list(files["base_offset"]) == sorted(files["base_offset"]) and files["base_offset"].iloc[0] == 0
    assert (files["state"] == "active").sum() == 1
    assert files.loc[files["state"] == "active", "base_offset"].item() == files["base_offset"].max()
    assert files["bytes"].sum() >= 260 * 10_000
    assert all(name == f"{offset:020d}.log" for name, offset in zip(files["file"], files["base_offset"]))
    empty = kafkalab.segments(topic, partition=0)              # nothing written: one empty active segment
    assert list(empty["state"]) == ["active"] and empty["bytes"].item() == 0


def test_segments_names_a_missing_topic_and_a_partition_out_of_range(broker):
    with pytest.raises(TopicNotFound, match="segments-nope"):
        kafkalab.segments("segments-nope")
    topic = kafkalab.recreate_topic("segments-range", partitions=1)
    with pytest.raises(ValueError, match="partitions 0..0, not 4"):
        kafkalab.segments(topic, partition=4)
