"""The wire: every message snapdeploy services exchange, its envelope and the RabbitMQ topology.

Services share nothing else. ``contracts.catalogue.CATALOGUE`` lists every message type.
"""
