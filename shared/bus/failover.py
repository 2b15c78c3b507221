"""A robust connection to one of several nodes of a RabbitMQ cluster, tried in turn.

``AMQP_URL`` may be a comma-separated list, one URL per node (``amqp://u:p@h1:5672/v,amqp://u:p@h2:5672/v``).
aio-pika's robust connection restores channels, consumers and QoS after a reconnect, but
always to the one URL it was given: with its node gone it would wait for that node. Each
attempt of this one tries the nodes in turn, from the one it was last connected to, and fails
only when none answers (so ``fail_fast`` at start means "no node answers").
"""

from __future__ import annotations

from typing import Any

import aio_pika
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from yarl import URL


def parse_urls(text: str) -> list[str]:
    """``"a, b,"`` -> ``["a", "b"]``; at least one URL."""
    urls = [part.strip() for part in text.split(",") if part.strip()]
    if not urls:
        raise ValueError("AMQP_URL names no broker")
    return urls


class FailoverConnection(aio_pika.RobustConnection):
    """A RobustConnection over a list of URLs: each (re)connect attempt tries them in turn."""

    def __init__(self, url: URL, *, urls: list[str], **kwargs: Any):
        self._urls = [URL(u) for u in urls]
        self._at = 0
        super().__init__(url, **kwargs)

    # RobustConnection's reconnect loop calls this private step for every attempt; it reads
    # ``self.url``, which is set here to the node whose turn it is.
    async def _RobustConnection__connect_transport(self) -> None:
        for _ in self._urls:
            self.url = self._urls[self._at]
            try:
                return await super()._RobustConnection__connect_transport()
            except CONNECTION_EXCEPTIONS as error:
                failure = error
                self._at = (self._at + 1) % len(self._urls)
        raise failure


async def connect(url_list: str, **kwargs: Any) -> aio_pika.abc.AbstractRobustConnection:
    """``aio_pika.connect_robust`` over every URL of ``url_list``; the first one that answers wins."""
    urls = parse_urls(url_list)
    if len(urls) == 1:
        return await aio_pika.connect_robust(urls[0], **kwargs)
    connection = FailoverConnection(URL(urls[0]), urls=urls, **kwargs)
    await connection.connect()
    return connection
