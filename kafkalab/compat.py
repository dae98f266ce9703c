"""A workaround for a kafka-python 3.0.x bug that leaves a consumer with no partitions.

kafka-python 3.0.12: when a consumer's poll() times out while a JoinGroup/SyncGroup round it
started is in flight, the round is left running to be awaited by the next poll. But if the
rejoin was triggered by a metadata change (the usual case for a consumer that subscribed to a
topic before its metadata arrived), the leader's assignment step makes need_rejoin() false, the
next poll never awaits the finished round, and its assignment is never applied: the consumer
stays in the group with no partitions, silently, until the next metadata refresh (5 minutes).
With kafkalab's short polls it happened in about 1 of 30 fresh consumers. The fix: a round in
flight is a rejoin in progress, so need_rejoin() answers True until it has been applied.
"""
from __future__ import annotations

from kafka.coordinator.consumer import ConsumerCoordinator

_original = ConsumerCoordinator.need_rejoin


def _need_rejoin(self) -> bool:
    return getattr(self, "_join_task", None) is not None or _original(self)


def apply() -> None:
    if ConsumerCoordinator.need_rejoin is not _need_rejoin:
        ConsumerCoordinator.need_rejoin = _need_rejoin
