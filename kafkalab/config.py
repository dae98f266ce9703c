"""Where to connect: KAFKA_BOOTSTRAP_SERVERS (any cluster) wins over the local lab broker."""
from __future__ import annotations

import os

from . import compat
from .broker.local import BrokerError, LocalBroker, reachable

compat.apply()   # once, before any client kafkalab configures exists (see compat.py)

# kafka-python waits 30 s to bootstrap by default; a notebook cell should fail sooner.
BOOTSTRAP_TIMEOUT_MS = 8000

# A lab's kernels get restarted: a member that vanished without leaving holds up its group's
# rebalance until its session expires (45 s by default), so lab group members expire sooner.
LAB_GROUP_CONFIG = {"session_timeout_ms": 10_000, "heartbeat_interval_ms": 2_000,
                    "max_poll_interval_ms": 60_000}

# Environment variable -> kafka-python setting, for remote clusters (e.g. SASL_SSL clouds).
SECURITY_ENV = {
    "KAFKA_SECURITY_PROTOCOL": "security_protocol",
    "KAFKA_SASL_MECHANISM": "sasl_mechanism",
    "KAFKA_SASL_USERNAME": "sasl_plain_username",
    "KAFKA_SASL_PASSWORD": "sasl_plain_password",
    "KAFKA_SSL_CAFILE": "ssl_cafile",
    "KAFKA_SSL_CERTFILE": "ssl_certfile",
    "KAFKA_SSL_KEYFILE": "ssl_keyfile",
}


class TopicNotFound(ValueError):
    """A topic that does not exist (a bad name, as far as the caller is concerned); the message
    says how to create it."""


class BrokerUnavailable(BrokerError):
    """No Kafka broker can be reached; the message says how to get one."""


HOW_TO_START = ("Start the lab broker with `kafkalab up` (or call kafkalab.ensure_broker()), "
                "or set KAFKA_BOOTSTRAP_SERVERS to a reachable cluster.")


# Set by ensure_broker(profile="cluster"): a notebook that asked for the cluster gets it from
# every helper, even where KAFKA_BOOTSTRAP_SERVERS names another broker.
_chosen: str | None = None


def bootstrap() -> str:
    """The bootstrap servers to use, as 'host:port[,host:port...]'."""
    if _chosen:
        return _chosen
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if env:
        return env
    broker = LocalBroker()
    state = broker.state()
    if state is None or not broker.alive(state):
        raise BrokerUnavailable(f"No local Kafka broker is running under {broker.dir}. {HOW_TO_START}")
    return f"127.0.0.1:{state.port}"


def client_config(**overrides) -> dict:
    """Keyword arguments for KafkaProducer, KafkaConsumer and KafkaAdminClient alike."""
    servers = overrides.pop("bootstrap_servers", None) or bootstrap()
    config = {"bootstrap_servers": servers, "bootstrap_timeout_ms": BOOTSTRAP_TIMEOUT_MS}
    for env, key in SECURITY_ENV.items():
        if os.environ.get(env):
            config[key] = os.environ[env]
    config.update(overrides)
    return config


# client_config()'s connection settings in librdkafka's names (confluent-kafka)
RDKAFKA_NAMES = {
    "bootstrap_servers": "bootstrap.servers", "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism", "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password", "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location", "ssl_keyfile": "ssl.key.location",
}


def confluent_config(**overrides) -> dict:
    """The connection client_config() gives kafka-python, for confluent-kafka (librdkafka's names);
    `overrides` in librdkafka's names ("group.id", "group.protocol"...)."""
    ours = client_config()
    config = {RDKAFKA_NAMES[key]: value for key, value in ours.items() if key in RDKAFKA_NAMES}
    config.update(overrides)
    return config


def group_consumer(*topics: str, group_id: str, from_beginning: bool = True, **overrides):
    """A KafkaConsumer in `group_id` with the lab's group settings: short session timeout, no
    auto-commit (the caller commits what it has processed), the earliest offset for a new group
    unless from_beginning=False. `topics` are subscribed if given."""
    from kafka import KafkaConsumer
    config = client_config(**{**LAB_GROUP_CONFIG, "enable_auto_commit": False,
                              "auto_offset_reset": "earliest" if from_beginning else "latest",
                              **overrides})
    return KafkaConsumer(*topics, group_id=group_id, **config)


def require_reachable(servers: str | None = None) -> str:
    """Fail in ~2 s with a clear message instead of a client's long bootstrap wait."""
    servers = servers or bootstrap()
    if not reachable(servers, timeout=2.0):
        raise BrokerUnavailable(f"No Kafka broker answers at {servers}. {HOW_TO_START}")
    return servers


def ensure_broker(profile: str = "single") -> str:
    """For notebooks: reuse a reachable broker, else start the local lab broker.
    profile="secure" always means the local SASL_SSL broker (see SecureBroker.client_config);
    profile="cluster" the local three-node cluster, which every helper then uses."""
    global _chosen
    if profile == "secure":
        from .broker.secure import SecureBroker
        broker = SecureBroker()
        broker.up()
        return broker.bootstrap
    if profile == "cluster":
        from .broker.cluster import Cluster
        cluster = Cluster()
        cluster.up()
        _chosen = cluster.bootstrap
        return _chosen
    if profile != "single":
        raise ValueError("profile must be 'single', 'secure' or 'cluster'")
    _chosen = None
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "").strip()
    if env:
        return require_reachable(env)
    broker = LocalBroker()
    broker.up()
    return broker.bootstrap
