"""Object storage: inputs, outputs and history stores named by URI (``s3://bucket/key``,
``gs://``, ``hdfs://`` and whatever else ``pyarrow.fs`` reaches), read through pyarrow's
filesystems, Parquet datasets streamed shard by shard as local ones are.

Credentials come from the usual environment, never from a flag: for S3, the AWS
variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION or
AWS_DEFAULT_REGION), ``~/.aws`` and instance roles, as the AWS tools read them; and
AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL for an S3-compatible server (MinIO, Ceph,
moto), which pointscore reads itself since pyarrow's S3 client does not.
"""
import os
import re
from urllib.parse import urlparse

from .errors import InputError, label_of

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
MAX_DATASET_FILES = 100_000  # as files.MAX_DATASET_FILES for local dataset directories


def is_remote(source):
    """Whether ``source`` is a URI of a remote filesystem (``file://`` is local)."""
    return isinstance(source, str) and bool(_URI.match(source)) \
        and not source.lower().startswith("file://")


def resolve(uri):
    """(pyarrow FileSystem, path within it) of a URI; an InputError when no filesystem
    takes it."""
    import pyarrow.fs as pafs
    parsed = urlparse(uri)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    try:
        if parsed.scheme == "s3" and endpoint:
            server = urlparse(endpoint)
            filesystem = pafs.S3FileSystem(endpoint_override=server.netloc or server.path,
                                           scheme=server.scheme or "https")
            return filesystem, (parsed.netloc + parsed.path).rstrip("/")
        filesystem, path = pafs.FileSystem.from_uri(uri)
        return filesystem, path.rstrip("/")
    except (OSError, ValueError) as exc:
        raise InputError(f"{label_of(uri)}: {str(exc).splitlines()[0]}") from None


def info(filesystem, path):
    """The FileInfo of ``path``."""
    return filesystem.get_file_info(path)


def is_directory(uri):
    """Whether the URI names a directory (a prefix holding objects)."""
    import pyarrow.fs as pafs
    filesystem, path = resolve(uri)
    return info(filesystem, path).type == pafs.FileType.Directory


def input_files(uri):
    """(filesystem, path, files) of an input: the object itself, or every object under
    a directory (a Parquet dataset). An InputError names a missing or empty one."""
    import pyarrow.fs as pafs
    filesystem, path = resolve(uri)
    label = label_of(uri)
    try:
        found = info(filesystem, path)
        if found.type == pafs.FileType.NotFound:
            raise InputError(f"{label}: no such file or directory")
        if found.type == pafs.FileType.File:
            if found.size == 0:
                raise InputError(f"{label}: the file is empty")
            return filesystem, path, [path]
        selector = pafs.FileSelector(path, recursive=True)
        files = sorted(f.path for f in filesystem.get_file_info(selector)
                       if f.type == pafs.FileType.File
                       and not os.path.basename(f.path).startswith((".", "_")))
    except OSError as exc:
        raise InputError(f"{label}: cannot read: {str(exc).splitlines()[0]}") from None
    if len(files) > MAX_DATASET_FILES:
        raise InputError(f"{label}: holds more than {MAX_DATASET_FILES:,} files")
    return filesystem, path, files


def write_bytes(uri, data):
    """Write an object whole (an object store's PUT is atomic: readers see the old
    object or the new one)."""
    filesystem, path = resolve(uri)
    with filesystem.open_output_stream(path) as out:
        out.write(data)


def upload(local_path, uri):
    """Copy a local file to ``uri``, streamed."""
    import pyarrow.fs as pafs
    filesystem, path = resolve(uri)
    pafs.copy_files(local_path, path, source_filesystem=pafs.LocalFileSystem(),
                    destination_filesystem=filesystem)


def join(uri, name):
    """A URI inside a directory URI."""
    return uri.rstrip("/") + "/" + name
