"""RabbitMQ through aio-pika: one robust connection, topology, confirmed publishes, consumers."""

from shared.bus.bus import Bus
from shared.bus.dispatcher import Dispatcher

__all__ = ["Bus", "Dispatcher"]
