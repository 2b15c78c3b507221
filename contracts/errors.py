"""CloudStack error codes carried by ``<Command>Failed`` replies and the HTTP API."""

from enum import IntEnum


class ErrorCode(IntEnum):
    UNAUTHORIZED = 401
    PARAM_ERROR = 431
    UNSUPPORTED = 432
    INTERNAL_ERROR = 530
    ACCOUNT_ERROR = 531
    INSUFFICIENT_CAPACITY = 533
    RESOURCE_IN_USE = 536
