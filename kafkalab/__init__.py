"""kafkalab: a real Apache Kafka lab for Jupyter, taught on kafka-python 3."""
import warnings

# kafka-python 3.0 emits a DeprecationWarning at import on Python 3.11 (see errata).
warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"kafka(\..*)?$")

from .broker.jars import KAFKA_VERSION  # noqa: E402
from .broker.local import BrokerError, LocalBroker  # noqa: E402
from .config import BrokerUnavailable, bootstrap, client_config, ensure_broker  # noqa: E402
from .explore import lag, peek, topics  # noqa: E402

__all__ = ["KAFKA_VERSION", "BrokerError", "BrokerUnavailable", "LocalBroker", "bootstrap",
           "client_config", "ensure_broker", "lag", "peek", "topics"]
__version__ = "0.1.0"
