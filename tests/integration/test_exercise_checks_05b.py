"""Notebook 05b's exercise check fails on the mistakes it targets, and says why (merged into
test_exercise_checks.py once the other exercise tests land)."""
import json

import nbformat
import pytest
from kafka import KafkaConsumer, KafkaProducer

import kafkalab

pytestmark = pytest.mark.integration
NOTEBOOKS = __import__("pathlib").Path(__file__).resolve().parents[2] / "notebooks"


def check_cell(notebook: str) -> str:
    cells = nbformat.read(NOTEBOOKS / notebook, as_version=4).cells
    solution = next(i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", []))
    return cells[solution + 1].source


def reader(keep_tombstones: bool, decode_none: bool):
    """A learner's latest_state with one of the two mistakes."""
    def latest_state(topic):
        consumer = KafkaConsumer(topic, **kafkalab.client_config(auto_offset_reset="earliest",
                                                                 consumer_timeout_ms=3000))
        state = {}
        try:
            for record in consumer:
                value = json.loads(record.value.decode()) if decode_none or record.value is not None else None
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
    (dict(keep_tombstones=False, decode_none=True), "crashed on a tombstone"),
])
def test_05b_check_explains_a_tombstone_kept_or_decoded(broker, mistake, message):
    namespace = {"kafkalab": kafkalab, "KafkaProducer": KafkaProducer, "json": json,
                 "latest_state": reader(**mistake)}
    with pytest.raises(AssertionError, match=message):
        exec(check_cell("05b_log_lifecycle.ipynb"), namespace)
