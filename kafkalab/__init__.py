"""kafkalab: a real Apache Kafka lab for Jupyter, taught on kafka-python 3.

Names load on first use, so the `kafkalab` command does not pay for pandas, plotly and widgets.
"""
import importlib
import warnings

# kafka-python 3.0 emits a DeprecationWarning at import on Python 3.11 (see errata).
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"kafka(\..*)?$")

__version__ = "0.1.0"

_WHERE = {
    "KAFKA_VERSION": "broker.jars",
    "BrokerError": "broker.local", "LocalBroker": "broker.local", "SecureBroker": "broker.secure",
    "Cluster": "broker.cluster", "ClusterPanel": "clusterview",
    "BrokerUnavailable": "config", "bootstrap": "config", "client_config": "config",
    "ensure_broker": "config",
    "lag": "explore", "peek": "explore", "topics": "explore", "recreate_topic": "explore",
    "RateProducer": "producers",
    "ProducerPanel": "widgets",
    "LiveConsumer": "consumers", "ConsumerGroup": "consumers",
    "EventTimeWindows": "windows", "Tumbling": "windows", "Hopping": "windows", "Session": "windows",
    "LagMonitor": "lagwatch", "judge": "lagwatch",
    "LagChart": "live", "ThroughputChart": "live", "TimeSeriesChart": "live", "WindowChart": "live",
    "stop_all": "runtime",
}
__all__ = list(_WHERE)


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kafkalab' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
