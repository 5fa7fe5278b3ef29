"""A deployment's code on its way to Lambda: an S3 object ``packages/<project>/<sha256 hex>.zip`` in the
platform's bucket, content-addressed and written once (a HEAD first: the same files make the same zip, so an
unchanged redeploy makes no PUT), removed with the project. Kept in S3 rather than sent inline so that a
version can be published again from the package alone (after a crash, or a function deleted by hand) and so
that an offline run can execute exactly what Lambda was given."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, Protocol

from botocore.exceptions import ClientError

from anchor_deploy.adapters.aws.client_errors import is_error

PACKAGES_PREFIX = "packages/"


class LambdaPackageLike(Protocol):
    """What publishing reads from a built package (the packaging's LambdaPackage, or any object alike)."""

    @property
    def code_sha256(self) -> str: ...  # base64 SHA-256 of the zip, as Lambda reports CodeSha256

    @property
    def handler(self) -> str: ...

    @property
    def runtime(self) -> str: ...


def package_zip(package: object) -> bytes:
    """The zip of a package: its ``read()``, else the bytes or the file it carries."""
    read = getattr(package, "read", None)
    if callable(read):
        return bytes(read())
    content = getattr(package, "zip_bytes", None)
    if isinstance(content, bytes):
        return content
    path = getattr(package, "zip_path", None)
    if isinstance(path, str | Path):
        return Path(path).read_bytes()
    raise TypeError(f"{type(package).__name__} carries no zip (read(), zip_bytes or zip_path)")


def package_key(project_id: str, code_sha256: str) -> str:
    """S3 key of a package: the base64 digest has '/' and '+', so the key spells it in hex."""
    return f"{PACKAGES_PREFIX}{project_id}/{base64.b64decode(code_sha256).hex()}.zip"


def code_argument(s3: Any, bucket: str, project_id: str, package: LambdaPackageLike) -> dict[str, Any]:
    """The ``Code`` of CreateFunction / the arguments of UpdateFunctionCode, uploading the zip if needed."""
    key = package_key(project_id, package.code_sha256)
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        if not is_error(error, "404", "NoSuchKey", "NotFound"):
            raise
        s3.put_object(
            Bucket=bucket,
            Key=key,
            Body=package_zip(package),
            ChecksumSHA256=package.code_sha256,
            ChecksumAlgorithm="SHA256",
        )
    return {"S3Bucket": bucket, "S3Key": key}


def delete_packages(s3: Any, bucket: str, project_id: str) -> None:
    """Every uploaded package of a project (paginated); nothing to do when there are none."""
    prefix = f"{PACKAGES_PREFIX}{project_id}/"
    token: dict[str, str] = {}
    while True:
        try:
            page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, **token)
        except ClientError as error:
            if is_error(error, "NoSuchBucket"):
                return
            raise
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        if not page.get("IsTruncated"):
            return
        token = {"ContinuationToken": page["NextContinuationToken"]}
