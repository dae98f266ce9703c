import pytest

import kafkalab
from kafkalab.config import BrokerUnavailable


def test_environment_wins(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-a:9092,broker-b:9092")
    assert kafkalab.bootstrap() == "broker-a:9092,broker-b:9092"


def test_client_config_carries_security_and_overrides(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "cloud:9093")
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "alice")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "s3cret")
    cfg = kafkalab.client_config(client_id="nb", bootstrap_timeout_ms=1000)
    assert cfg == {"bootstrap_servers": "cloud:9093", "bootstrap_timeout_ms": 1000,
                   "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
                   "sasl_plain_username": "alice", "sasl_plain_password": "s3cret",
                   "client_id": "nb"}


def test_no_broker_says_how_to_start_one(monkeypatch, tmp_path):
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.setenv("KAFKALAB_HOME", str(tmp_path))
    with pytest.raises(BrokerUnavailable, match="kafkalab up"):
        kafkalab.bootstrap()


@pytest.mark.parametrize("call", [kafkalab.topics, lambda: kafkalab.peek("t"),
                                  lambda: kafkalab.lag("g"), lambda: kafkalab.segments("t")])
def test_helpers_fail_clearly_on_an_unreachable_broker(monkeypatch, call):
    from kafkalab.broker.local import free_port
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{free_port()}")
    with pytest.raises(BrokerUnavailable, match="No Kafka broker answers"):
        call()


def test_public_surface_is_small():
    assert set(kafkalab.__all__) >= {"KAFKA_VERSION", "BrokerError", "BrokerUnavailable",
                                     "LocalBroker", "bootstrap", "client_config",
                                     "ensure_broker", "lag", "peek", "topics", "stop_all",
                                     "RateProducer", "ProducerPanel", "LiveConsumer"}
    assert len(kafkalab.__all__) <= 38  # a guard: grow the surface deliberately (37 with the analytics half; segments)
    assert all(hasattr(kafkalab, name) for name in kafkalab.__all__)


def test_type_checkers_see_exactly_the_lazy_exports():
    import ast
    import inspect
    tree = ast.parse(inspect.getsource(kafkalab))
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and getattr(node.test, "id", None) == "TYPE_CHECKING")
    seen = {alias.asname or alias.name: (node.module.lstrip("."))
            for node in block.body for alias in node.names}
    assert seen == kafkalab._WHERE


def test_ensure_broker_knows_its_profiles():
    with pytest.raises(ValueError, match="profile"):
        kafkalab.ensure_broker(profile="cluster-of-one")


def test_recreate_topic_refuses_assignments_with_counts():
    """Replicas placed by hand say how many partitions and replicas there are: both at once is a mistake,
    refused before any broker is asked."""
    with pytest.raises(ValueError, match="not both"):
        kafkalab.recreate_topic("t", partitions=3, assignments={0: [1]})
