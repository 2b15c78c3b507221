"""How a handler says what went wrong; the dispatcher turns each class into its DESIGN-4 behaviour."""

from __future__ import annotations

from contracts.errors import ErrorCode


class DomainError(Exception):
    """The request cannot be done as asked (bad parameter, no capacity, resource in use, vCenter fault).

    The handler's writes are rolled back, a ``<Command>Failed`` carrying code and text is the
    command's reply, and the message is acked: sending it again gives the same answer."""

    def __init__(
        self,
        code: ErrorCode | int,
        text: str,
        *,
        fault: str | None = None,
        retryable: bool = False,
    ):
        super().__init__(text)
        self.code = int(code)
        self.text = text
        self.fault = fault
        self.retryable = retryable


class InvalidMessage(Exception):
    """The message cannot be read (not JSON, not an envelope, payload fails its model).

    It goes to the queue's DLQ at once, with a 431 ``<Command>Failed`` when it was a command."""


class TransientError(Exception):
    """Something the handler depends on is unreachable for now; retry with backoff."""
