"""The kafka-python workarounds in compat.py: applied once at import, only where verified."""
import kafka
from kafka.consumer.fetcher import Fetcher
from kafka.coordinator.consumer import ConsumerCoordinator

from kafkalab import compat


def test_the_installed_kafka_python_is_the_one_the_workaround_was_verified_on():
    assert kafka.__version__ == compat.VERIFIED_WITH, (
        f"kafka-python {kafka.__version__} is installed, but compat.py was verified on "
        f"{compat.VERIFIED_WITH}. Check whether the lost-assignment race is still there "
        "(tests/integration/test_consumer_assignment.py and test_consumer_pause.py with compat.apply() "
        "disabled); then raise compat.VERIFIED_WITH, or delete the workarounds the release fixed.")


def test_importing_the_configuration_applies_it_once():
    import kafkalab.config  # noqa: F401  (the import applies it)
    assert compat.active()
    patched = ConsumerCoordinator.need_rejoin, Fetcher.fetched_records
    assert compat.apply() and (ConsumerCoordinator.need_rejoin, Fetcher.fetched_records) == patched


def test_it_applies_only_to_the_release_it_was_verified_on():
    assert compat.needed("3.0.12") and compat.needed("3.0.12.post1")
    assert not compat.needed("3.0.13") and not compat.needed("3.1.0") and not compat.needed("3.0.11")
    assert compat.version("3.0.12rc1") == (3, 0, 12)


def test_a_round_in_flight_counts_as_a_rejoin():
    coordinator = ConsumerCoordinator.__new__(ConsumerCoordinator)   # no client: only the method
    coordinator._join_task = object()
    assert compat._need_rejoin(coordinator) is True


def test_an_exhausted_fetch_slot_is_freed_for_a_resumed_partition(monkeypatch):
    class Slot:                          # a PartitionRecords whose records were all read
        def __bool__(self):
            return False

    fetcher = Fetcher.__new__(Fetcher)   # no client: only the method
    fetcher._next_partition_records = Slot()
    seen = []
    monkeypatch.setattr(compat, "_fetched_records_original",
                        lambda self, *a, **k: seen.append(self._next_partition_records))
    compat._fetched_records(fetcher)
    assert seen == [None]
