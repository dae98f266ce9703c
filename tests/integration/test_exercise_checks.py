"""Exercise checks fail on the mistake they target, and say why: each check cell is run on a wrong answer."""
import nbformat
import pytest
from kafka import KafkaProducer

import kafkalab

pytestmark = pytest.mark.integration
NOTEBOOKS = __import__("pathlib").Path(__file__).resolve().parents[2] / "notebooks"


def check_cell(notebook: str) -> str:
    cells = nbformat.read(NOTEBOOKS / notebook, as_version=4).cells
    solution = next(i for i, c in enumerate(cells) if "solution" in c.metadata.get("tags", []))
    return cells[solution + 1].source


def test_03_check_refuses_idempotence_left_to_kafka_pythons_warning(broker):
    kafkalab.recreate_topic("exercise-03", partitions=1)
    namespace = {"kafkalab": kafkalab, "KafkaProducer": KafkaProducer, "TOPIC": "exercise-03",
                 "my_settings": {"acks": 1, "compression_type": "lz4"}}     # the mistake: idempotence not said
    namespace["my_producer"] = KafkaProducer(**kafkalab.client_config(), **namespace["my_settings"])
    assert namespace["my_producer"].config["enable_idempotence"] is False     # what hid it from the old check
    with pytest.raises(AssertionError, match="switches it off itself"):
        exec(check_cell("03_configuration.ipynb"), namespace)
    assert namespace["my_producer"]._closed
