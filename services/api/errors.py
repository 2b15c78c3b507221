"""CloudStack's error answers (CLOUDSTACK_API.md section 5): body, HTTP status, X-Description."""

from __future__ import annotations

from contracts.errors import ErrorCode

# CSExceptionErrorCode of the exception CloudStack would have thrown; no client reads it.
CS_ERROR_CODES = {431: 4350, 531: 4365, 533: 4325, 536: 4375, 530: 9999, 432: 9999, 429: 9999, 430: 9999}

BAD_CREDENTIALS = "unable to verify user credentials and/or request signature"


class ApiError(Exception):
    """An answer with a CloudStack error code; nothing was done."""

    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = int(code)
        self.text = text


def unauthorized(text: str = BAD_CREDENTIALS) -> ApiError:
    return ApiError(ErrorCode.UNAUTHORIZED, text)


def param_error(text: str) -> ApiError:
    return ApiError(ErrorCode.PARAM_ERROR, text)


def denied(text: str) -> ApiError:
    return ApiError(ErrorCode.ACCOUNT_ERROR, text)


def error_body(code: int, text: str) -> dict:
    body: dict = {"uuidList": [], "errorcode": code, "errortext": text}
    if code in CS_ERROR_CODES:
        body["cserrorcode"] = CS_ERROR_CODES[code]
    return body
