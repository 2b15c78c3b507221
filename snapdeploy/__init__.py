"""snapdeploy's public Python API for bus producers: ``from snapdeploy import BusClient``."""

from snapdeploy.client import BusClient, CommandRefused, Subscription

__all__ = ["BusClient", "CommandRefused", "Subscription"]
