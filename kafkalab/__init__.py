"""kafkalab: a real Apache Kafka lab for Jupyter, taught on kafka-python 3.

Names load on first use, so the `kafkalab` command does not pay for pandas, plotly and widgets;
the TYPE_CHECKING block below shows them to type checkers and editors.
"""
from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING

# kafka-python 3.0 emits a DeprecationWarning at import on Python 3.11.
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"kafka(\..*)?$")

__version__ = "0.1.0"

_WHERE = {
    "KAFKA_VERSION": "broker.jars",
    "BrokerError": "broker.local", "LocalBroker": "broker.local", "SecureBroker": "broker.secure",
    "Cluster": "broker.cluster", "ClusterPanel": "clusterview",
    "BrokerUnavailable": "config", "bootstrap": "config", "client_config": "config",
    "ensure_broker": "config",
    "lag": "explore", "peek": "explore", "topics": "explore", "recreate_topic": "explore",
    "TopicNotFound": "config",
    "read": "reader", "profile": "profiling", "Browser": "browser", "segments": "segments",
    "lag_history": "laghistory", "lag_history_chart": "laghistory", "watch": "laghistory",
    "RateProducer": "producers",
    "ProducerPanel": "widgets",
    "LiveConsumer": "consumers", "ConsumerGroup": "consumers",
    "EventTimeWindows": "windows", "SessionWindows": "windows", "Tumbling": "windows",
    "Hopping": "windows",
    "LagMonitor": "lagwatch", "judge": "lagwatch",
    "LagChart": "live", "ThroughputChart": "live", "TimeSeriesChart": "live", "WindowChart": "live",
    "stop_all": "runtime", "wait_until": "runtime",
}
__all__ = list(_WHERE)

if TYPE_CHECKING:
    from .browser import Browser  # noqa: F401
    from .broker.cluster import Cluster  # noqa: F401
    from .broker.jars import KAFKA_VERSION  # noqa: F401
    from .broker.local import BrokerError, LocalBroker  # noqa: F401
    from .broker.secure import SecureBroker  # noqa: F401
    from .clusterview import ClusterPanel  # noqa: F401
    from .config import BrokerUnavailable, TopicNotFound, bootstrap, client_config, ensure_broker  # noqa: F401
    from .consumers import ConsumerGroup, LiveConsumer  # noqa: F401
    from .explore import lag, peek, recreate_topic, topics  # noqa: F401
    from .laghistory import lag_history, lag_history_chart, watch  # noqa: F401
    from .lagwatch import LagMonitor, judge  # noqa: F401
    from .live import LagChart, ThroughputChart, TimeSeriesChart, WindowChart  # noqa: F401
    from .producers import RateProducer  # noqa: F401
    from .profiling import profile  # noqa: F401
    from .reader import read  # noqa: F401
    from .runtime import stop_all, wait_until  # noqa: F401
    from .segments import segments  # noqa: F401
    from .widgets import ProducerPanel  # noqa: F401
    from .windows import EventTimeWindows, Hopping, SessionWindows, Tumbling  # noqa: F401


def __getattr__(name):
    if name in _WHERE:
        value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kafkalab' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
