"""Object storage (S3 API: MinIO in clusters, SeaweedFS locally) through the minio SDK."""

from components.storage.s3 import (
    S3Location,
    StorageError,
    delete_prefix,
    download_directory,
    list_objects,
    parse_s3_uri,
    upload_directory,
)

__all__ = [
    "S3Location",
    "StorageError",
    "delete_prefix",
    "download_directory",
    "list_objects",
    "parse_s3_uri",
    "upload_directory",
]
