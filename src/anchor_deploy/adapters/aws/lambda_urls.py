"""Function URLs of aliases: public (AuthType NONE), with the two resource-policy statements a public URL
needs (invoking through the URL, and the invoke it makes), each on the alias's own policy."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from anchor_deploy.adapters.aws.client_errors import is_error

_NOT_FOUND = "ResourceNotFoundException"
_PUBLIC_STATEMENTS: list[dict[str, Any]] = [
    {"StatementId": "anchor-url", "Action": "lambda:InvokeFunctionUrl", "FunctionUrlAuthType": "NONE"},
    {"StatementId": "anchor-url-invoke", "Action": "lambda:InvokeFunction", "InvokedViaFunctionUrl": True},
]


def url_of(client: Any, name: str, alias: str) -> str | None:
    try:
        config = client.get_function_url_config(FunctionName=name, Qualifier=alias)
    except ClientError as error:
        if is_error(error, _NOT_FOUND):
            return None
        raise
    return str(config["FunctionUrl"])


def ensure_url(client: Any, name: str, alias: str) -> str:
    """The alias's URL, made (after its permissions) if missing; a racing maker's URL is as good."""
    url = url_of(client, name, alias)
    if url is not None:
        return url
    for statement in _PUBLIC_STATEMENTS:
        try:
            client.add_permission(FunctionName=name, Qualifier=alias, Principal="*", **statement)
        except ClientError as error:
            if not is_error(error, "ResourceConflictException"):
                raise  # a conflict: the statement is there already
    try:
        made = client.create_function_url_config(FunctionName=name, Qualifier=alias, AuthType="NONE")
    except ClientError as error:
        if is_error(error, "ResourceConflictException") and (url := url_of(client, name, alias)):
            return url
        raise
    return str(made["FunctionUrl"])


def delete_url(client: Any, name: str, alias: str) -> None:
    try:
        client.delete_function_url_config(FunctionName=name, Qualifier=alias)
    except ClientError as error:
        if not is_error(error, _NOT_FOUND):
            raise
