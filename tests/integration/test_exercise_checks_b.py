"""Exercise checks of notebooks 07 and 09 fail on the mistake they target, and say why (to merge into
test_exercise_checks.py): each check cell is run on a wrong answer, and 09's also on its own solution."""
import time

import nbformat
import pytest
from kafka import JsonSerializer, KafkaConsumer, KafkaProducer

import kafkalab

pytestmark = pytest.mark.integration
NOTEBOOKS = __import__("pathlib").Path(__file__).resolve().parents[2] / "notebooks"


def _cells(notebook: str) -> tuple[list, list]:
    cells = nbformat.read(NOTEBOOKS / notebook, as_version=4).cells
    return cells, [i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", [])]


def check_cell(notebook: str, n: int = 0) -> str:
    """The check cell of the notebook's n-th exercise: the cell right after its n-th `solution` cell."""
    cells, solutions = _cells(notebook)
    return cells[solutions[n] + 1].source


def solution_cell(notebook: str, n: int = 0) -> str:
    cells, solutions = _cells(notebook)
    return cells[solutions[n]].source


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
