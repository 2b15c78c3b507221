"""A refused message's reason in the contract's words: which field, and what it must be.

pydantic's own wording ("Input should be less than or equal to 768", "Value error, ...") and
the refused value never reach the caller: the value may be a megabyte long or hold a secret.
"""

from __future__ import annotations

from pydantic import ValidationError

MOST_REASONS = 5
LONGEST_NAME = 64  # characters of a field name or a type name shown in a reason


def clip(text: str, limit: int = LONGEST_NAME) -> str:
    """A name as the sender wrote it, cut to ``limit`` characters: a field or type name is part of
    the refused input, and may be a megabyte long."""
    text = str(text)
    return text if len(text) <= limit else f"{text[:limit]}..."


# pydantic error type -> what the field must be (``{...}`` from the error's context)
_MUST = {
    "missing": "is required",
    "extra_forbidden": "is not a field of this message",
    "uuid_parsing": "must be a UUID",
    "uuid_type": "must be a UUID",
    "uuid_version": "must be a UUID",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "string_type": "must be text",
    "list_type": "must be a list",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "datetime_parsing": "must be a date and time (ISO 8601)",
    "datetime_type": "must be a date and time (ISO 8601)",
    "datetime_from_date_parsing": "must be a date and time (ISO 8601)",
    "greater_than_equal": "must be at least {ge}",
    "greater_than": "must be greater than {gt}",
    "less_than_equal": "must be at most {le}",
    "less_than": "must be less than {lt}",
    "string_too_short": "must not be empty",
    "string_too_long": "must be at most {max_length} characters",
    "too_short": "must have at least {min_length} items",
    "too_long": "must have at most {max_length} items",
    "string_pattern_mismatch": "has characters it may not have",
    "literal_error": "must be one of {expected}",
    "enum": "must be one of {expected}",
    "json_invalid": "is not JSON",
    "json_type": "is not JSON",
}


def reason(item: dict) -> str:
    where = ".".join(clip(p) for p in item["loc"])
    context = item.get("ctx") or {}
    kind = item["type"]
    if kind == "value_error":  # a model's own rule, written for people (ValueError text)
        text = str(context.get("error", "")) or "is not valid"
    elif kind in _MUST:
        try:
            text = _MUST[kind].format(**context)
        except (KeyError, IndexError):
            text = _MUST[kind].split(" {")[0]
    else:  # our own rules (PydanticCustomError) already speak the domain's words
        text = item["msg"]
    return f"{where} {text}" if where else text


def explain(error: ValidationError) -> str:
    """``cpu_number must be at most 768; name must not contain control characters``."""
    reasons = [reason(item) for item in error.errors(include_url=False)]
    more = len(reasons) - MOST_REASONS
    text = "; ".join(reasons[:MOST_REASONS])
    return f"{text}; and {more} more" if more > 0 else text
