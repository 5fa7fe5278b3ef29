"""Reading botocore's ClientError: the AWS error code an answer carried."""

from __future__ import annotations

from botocore.exceptions import ClientError


def error_code(error: BaseException) -> str:
    """The AWS error code of a ClientError ("" for any other exception)."""
    if not isinstance(error, ClientError):
        return ""
    return str(error.response.get("Error", {}).get("Code", ""))


def is_error(error: BaseException, *codes: str) -> bool:
    return error_code(error) in codes
