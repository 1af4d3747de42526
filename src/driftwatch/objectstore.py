"""Object storage (s3://, gs://) through fsspec: a URL's filesystem, and its failures as one-line errors.

Credentials come from the environment of the machine that opens the URL, as the storage's own SDK finds
them (for S3: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, AWS_PROFILE, an instance
role; AWS_ENDPOINT_URL for an S3-compatible service; for GCS: GOOGLE_APPLICATION_CREDENTIALS or the
machine's account), never from driftwatch.toml. Each protocol is an optional extra.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from driftwatch.errors import UserError, first_line

PROTOCOLS = {"s3": "s3", "gs": "gcs", "gcs": "gcs"}  # URL scheme -> the extra that reads it
# Fail within seconds on an unreachable endpoint rather than after botocore's minutes of retries.
_OPTIONS: dict[str, dict[str, Any]] = {
    "s3": {"config_kwargs": {"connect_timeout": 10, "read_timeout": 120, "retries": {"max_attempts": 3}}},
}


def is_object_url(text: str) -> bool:
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme in PROTOCOLS


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of `url` and the path inside it (bucket/prefix, no scheme)."""
    scheme = url.partition("://")[0]
    with failures(url):
        import fsspec  # with the extra: fsspec and the protocol's own package (s3fs, gcsfs)

        # A client of its own each time: the credentials are the environment's as it is now, not those
        # of an earlier client fsspec would otherwise hand back from its cache.
        return fsspec.core.url_to_fs(url, skip_instance_cache=True, **_OPTIONS.get(scheme, {}))


@contextmanager
def failures(url: str, doing: str = "") -> Iterator[None]:
    """Turns what object storage answers when it cannot be used into one line saying what to fix: a
    missing extra, credentials missing or refused, a bucket that does not exist, an endpoint not reached."""
    where = f"{url}{': ' + doing if doing else ''}"
    try:
        yield
    except ImportError:
        extra = PROTOCOLS[url.partition("://")[0]]
        raise UserError(f"{url}: reading object storage needs an extra: pip install 'driftwatch[{extra}]'") from None
    except Exception as exc:
        problem = _problem(exc)
        if problem is None:
            raise
        raise UserError(f"{where}: {problem} ({first_line(exc)})") from None


def _problem(exc: BaseException) -> str | None:
    name = type(exc).__name__
    if name in ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError"):
        return "no credentials in this machine's environment"
    if isinstance(exc, PermissionError):
        return "the credentials in this machine's environment were refused"
    if isinstance(exc, FileNotFoundError):
        return "not found (does the bucket exist?)"
    if isinstance(exc, ConnectionError | TimeoutError) or "ConnectionError" in name or "Timeout" in name:
        return "cannot reach the storage endpoint"
    return None
