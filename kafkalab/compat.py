"""Workarounds for two kafka-python 3.0.12 consumer bugs that lose records or partitions silently.

1. A consumer left with no partitions (ConsumerCoordinator.need_rejoin). When poll() times out
   while a JoinGroup/SyncGroup round it started is in flight, the round is left running to be
   awaited by the next poll. But if the rejoin was triggered by a metadata change (the usual case
   for a consumer that subscribed to a topic before its metadata arrived), the leader's assignment
   step makes need_rejoin() false, the next poll never awaits the finished round, and its
   assignment is never applied: the consumer stays in the group with no partitions until the next
   metadata refresh (5 minutes). With short polls: about 1 fresh consumer in 30. Fix: a round in
   flight is a rejoin in progress. Guard: tests/integration/test_consumer_assignment.py.

2. A resumed partition that never delivers again (Fetcher.fetched_records). A partition paused
   while some of its fetched records are still unread has them parked; on resume they are meant
   to take the in-line slot "when free", which the code checks as `slot is None`. But a slot whose
   records were all read holds an exhausted (falsy) object, not None, so after any other
   partition's records were read the parked ones never come back, and the partition is never
   fetched again: pause() then resume() stops a partition for good. It stalled the task queue's
   workers (they pause a priority whose buffer is full). Fix: an exhausted slot counts as free.
   Guard: tests/integration/test_consumer_pause.py.

They are applied once, when kafkalab.config is imported (before any client kafkalab configures
exists), and only on the kafka-python release they were verified on: another release may have
fixed the bugs or moved the code. tests/unit/test_compat.py fails when another release is
installed, so that someone runs the two guards without the workarounds and decides.
"""
from __future__ import annotations

import logging
import re

import kafka
from kafka.consumer.fetcher import Fetcher
from kafka.coordinator.consumer import ConsumerCoordinator

log = logging.getLogger("kafkalab")

VERIFIED_WITH = "3.0.12"        # the kafka-python release both bugs were reproduced and fixed on

_need_rejoin_original = ConsumerCoordinator.need_rejoin
_fetched_records_original = Fetcher.fetched_records


def version(text: str) -> tuple[int, ...]:
    """(major, minor, patch) from a version string ("3.0.12rc1" -> (3, 0, 12))."""
    return tuple(int(re.match(r"\d*", piece).group() or 0) for piece in text.split(".")[:3])


def needed(kafka_python: str = kafka.__version__) -> bool:
    return version(kafka_python) == version(VERIFIED_WITH)


def _need_rejoin(self) -> bool:
    return getattr(self, "_join_task", None) is not None or _need_rejoin_original(self)


def _fetched_records(self, *args, **kwargs):
    if self._next_partition_records is not None and not self._next_partition_records:
        self._next_partition_records = None      # exhausted: a resumed partition may take the slot
    return _fetched_records_original(self, *args, **kwargs)


def apply() -> bool:
    """Apply both workarounds if this kafka-python needs them; True if they are active."""
    if not needed():
        log.warning("kafkalab: kafka-python %s is not the release kafkalab's workarounds were verified "
                    "on (%s); they are not applied (see kafkalab/compat.py)", kafka.__version__, VERIFIED_WITH)
        return False
    if not active():
        ConsumerCoordinator.need_rejoin = _need_rejoin
        Fetcher.fetched_records = _fetched_records
        log.info("kafkalab: kafka-python %s: workarounds for lost assignments and for partitions that "
                 "stay silent after resume() are active (kafkalab/compat.py)", kafka.__version__)
    return True


def active() -> bool:
    return ConsumerCoordinator.need_rejoin is _need_rejoin and Fetcher.fetched_records is _fetched_records
