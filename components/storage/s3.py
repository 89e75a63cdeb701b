"""Directories to and from an S3 bucket, with credentials from the environment (a Kubernetes Secret in clusters).

URIs take Triton's form so one string serves both: `s3://host:port/bucket/prefix` names the endpoint inline
(MinIO, SeaweedFS); `s3://bucket/prefix` takes it from S3_ENDPOINT_URL, MLFLOW_S3_ENDPOINT_URL or AWS_ENDPOINT_URL.
An explicit `http://`/`https://` after `s3://` (`s3://http://host:port/bucket`) picks the scheme, as Triton does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from components.errors import ConfigError, InputNotFoundError, OmniError

ENDPOINT_ENV = ("S3_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL")
_SECRET = "in clusters it comes from the mlflow-credentials Secret"  # where a pipeline step's S3 keys come from


class StorageError(OmniError, RuntimeError):
    """The object store refused or could not be reached; the message names what and the fix."""


@dataclass(frozen=True)
class S3Location:
    endpoint: str  # host:port
    secure: bool  # https
    bucket: str
    prefix: str  # no leading or trailing slash; "" for the bucket root

    @property
    def uri(self) -> str:
        """The `s3://http(s)://host:port/bucket/prefix` form tritonserver reads."""
        scheme = "https" if self.secure else "http"
        return f"s3://{scheme}://{self.endpoint}/{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")

    def child(self, *parts: str) -> S3Location:
        prefix = "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))
        return S3Location(self.endpoint, self.secure, self.bucket, prefix)


def parse_s3_uri(uri: str) -> S3Location:
    """Parse the three accepted forms (see the module docstring); raise ConfigError naming the fix."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"{uri!r} is not an s3:// URI; use s3://host:port/bucket/prefix or s3://bucket/prefix")
    rest = uri[len("s3://") :]
    secure = None
    for scheme in ("http://", "https://"):
        if rest.startswith(scheme):
            secure, rest = scheme == "https://", rest[len(scheme) :]
    head, _, path = rest.partition("/")
    if ":" in head:  # host:port/bucket/prefix
        endpoint, (bucket, _, prefix) = head, path.partition("/")
    else:  # bucket/prefix, endpoint from the environment
        bucket, prefix = head, path
        env = next((os.environ[k] for k in ENDPOINT_ENV if os.environ.get(k)), None)
        if env is None:
            raise ConfigError(
                f"{uri!r} names no endpoint: write s3://host:port/bucket/... or set one of {', '.join(ENDPOINT_ENV)}"
            )
        parts = urlsplit(env if "://" in env else f"http://{env}")
        endpoint, secure = parts.netloc, parts.scheme == "https" if secure is None else secure
    if not bucket:
        raise ConfigError(f"{uri!r} names no bucket")
    return S3Location(endpoint, bool(secure), bucket, prefix.strip("/"))


def _client(location: S3Location):
    from minio import Minio

    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not key or not secret:
        raise StorageError(
            f"no S3 credentials for {location.uri}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY ({_SECRET})"
        )
    return Minio(
        location.endpoint,
        access_key=key,
        secret_key=secret,
        secure=location.secure,
        region=os.environ.get("AWS_DEFAULT_REGION") or None,
    )


def _call(location: S3Location, what: str, fn, *args, **kwargs):
    from minio.error import S3Error
    from urllib3.exceptions import HTTPError

    try:
        return fn(*args, **kwargs)
    except S3Error as error:
        hint = {
            "NoSuchBucket": f"create bucket '{location.bucket}' first (the bootstrap's bucket Job does)",
            "SignatureDoesNotMatch": f"check AWS_SECRET_ACCESS_KEY ({_SECRET})",
            "InvalidAccessKeyId": f"check AWS_ACCESS_KEY_ID ({_SECRET})",
            "AccessDenied": "grant this key access to the bucket",
        }.get(error.code, "see the message")
        raise StorageError(f"{what} {location.uri} failed: {error.code}: {error.message}; {hint}") from None
    except HTTPError as error:
        # urllib3 has already retried (minio's client: 5 tries, ~6 s); its innermost reason is the useful part.
        reason = getattr(error, "reason", None) or error
        raise StorageError(
            f"{what} {location.uri} failed: cannot reach the object store at {location.endpoint} ({reason}); "
            "check the endpoint and that the server is up, then run this again"
        ) from None


def upload_directory(local_dir: Path, uri: str, last: tuple[str, ...] = ()) -> list[str]:
    """Upload every file under `local_dir` to `uri` (a prefix), keeping relative paths; returns object names.

    Files named in `last` go after all others (a completeness marker: its presence vouches for the rest). An upload
    cut short (the server went away) leaves whole objects only, those before the cut: S3 shows an object once its PUT
    completes. The marker is not among them, so readers ignore them; running the upload again rewrites them all."""
    local_dir, location = Path(local_dir), parse_s3_uri(uri)
    files = sorted((p for p in local_dir.rglob("*") if p.is_file()), key=lambda p: (p.name in last, str(p)))
    if not files:
        raise InputNotFoundError(f"{local_dir} has no files to upload")
    client = _client(location)
    names = []
    for path in files:
        name = location.child(path.relative_to(local_dir).as_posix()).prefix
        try:
            _call(location, "upload to", client.fput_object, location.bucket, name, str(path))
        except StorageError as error:
            raise StorageError(f"{error} ({len(names)} of {len(files)} files were uploaded before it failed)") from None
        names.append(name)
    return names


def download_directory(uri: str, dst: Path) -> Path:
    """Download every object under `uri` into `dst`, keeping paths relative to the prefix."""
    location, dst = parse_s3_uri(uri), Path(dst)
    client = _client(location)
    prefix = f"{location.prefix}/" if location.prefix else ""
    objects = _list(client, location, prefix)
    if not objects:
        raise StorageError(f"nothing at {location.uri}; check the prefix (and the model version in it)")
    for obj in objects:
        target = dst / obj.object_name[len(prefix) :]
        _call(location, "download from", client.fget_object, location.bucket, obj.object_name, str(target))
    return dst


def list_objects(uri: str) -> list[str]:
    """Names of the objects under `uri`, relative to its prefix."""
    location = parse_s3_uri(uri)
    prefix = f"{location.prefix}/" if location.prefix else ""
    client = _client(location)
    return [obj.object_name[len(prefix) :] for obj in _list(client, location, prefix)]


def _list(client, location: S3Location, prefix: str) -> list:
    # minio lists lazily: the request (and any error) happens while iterating, so the list is made inside _call.
    return _call(location, "list", lambda: list(client.list_objects(location.bucket, prefix=prefix, recursive=True)))


def delete_prefix(uri: str, first: tuple[str, ...] = ()) -> int:
    """Delete every object under `uri`, those named in `first` before the rest; returns how many."""
    location = parse_s3_uri(uri)
    client = _client(location)
    relative = sorted(list_objects(uri), key=lambda name: (name.rsplit("/", 1)[-1] not in first, name))
    names = [location.child(name).prefix for name in relative]
    for name in names:
        _call(location, "delete from", client.remove_object, location.bucket, name)
    return len(names)
