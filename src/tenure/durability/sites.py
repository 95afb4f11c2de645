"""Sites: where segments, snapshots and checkpoints are kept, named by URL.

``file:///var/backups/tenure`` and ``s3://bucket/prefix`` are opened through
obstore (the ``object_store`` crate behind one small API). It was chosen over
fsspec + s3fs because a single ``put`` is atomic on both kinds of site: the local
store writes a temporary file and renames it, and S3 makes an object visible only
when its PUT completes. A partial upload is therefore never visible, let alone taken
as the latest. It also needs no async S3 stack (aiobotocore). S3 credentials, region
and endpoint come from the usual ``AWS_*`` environment variables (``AWS_ENDPOINT_URL``
and ``AWS_ALLOW_HTTP=true`` for an S3-compatible server such as MinIO or moto).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import obstore
from obstore.store import LocalStore, S3Store

from tenure.crypto.files import make_private, make_private_dir
from tenure.errors import ConfigurationError, TenureError

if TYPE_CHECKING:
    from obstore.store import S3Config


class SiteUnavailable(TenureError):
    """A site could not be read or written."""

    code = "site_unavailable"


@dataclass
class Site:
    """One site: atomic whole-object writes, reads, listings."""

    url: str
    store: Any
    local_root: Path | None = None
    """The directory of a ``file://`` site, whose files are made private."""

    def put(self, path: str, data: bytes) -> None:
        """Write ``data`` at ``path`` atomically (readers see all of it or nothing).
        On a ``file://`` site the file is 0600 and the directories obstore made
        for it 0700."""
        try:
            if self.local_root is not None:
                # Directories first, so that obstore (which creates them as the umask
                # allows) finds them; the file is new at every put.
                make_private_dir((self.local_root / path).parent)
            obstore.put(self.store, path, data)
            if self.local_root is not None:
                make_private(self.local_root / path)
        except Exception as exc:  # obstore raises builtins and its own errors alike
            raise SiteUnavailable(f"cannot write {path} to {self.url}: {exc}") from exc

    def get(self, path: str) -> bytes | None:
        """The object at ``path``, or None if there is none."""
        try:
            return bytes(obstore.get(self.store, path).bytes())
        except FileNotFoundError:
            return None
        except Exception as exc:
            if type(exc).__name__ == "NotFoundError":
                return None
            raise SiteUnavailable(f"cannot read {path} from {self.url}: {exc}") from exc

    def list(self, prefix: str) -> list[str]:
        """Paths under ``prefix``, sorted."""
        try:
            return sorted(
                str(meta["path"])
                for batch in obstore.list(self.store, prefix=prefix)
                for meta in batch
            )
        except FileNotFoundError:
            return []
        except Exception as exc:
            raise SiteUnavailable(f"cannot list {prefix} at {self.url}: {exc}") from exc

    def children(self) -> tuple[str, ...]:
        """The names at the top of the site (one per account), sorted."""
        try:
            found = obstore.list_with_delimiter(self.store, None)
        except FileNotFoundError:
            return ()
        except Exception as exc:
            raise SiteUnavailable(f"cannot list {self.url}: {exc}") from exc
        return tuple(sorted(str(name).strip("/") for name in found["common_prefixes"]))

    def delete(self, path: str) -> None:
        try:
            obstore.delete(self.store, path)
        except FileNotFoundError:
            return
        except Exception as exc:
            raise SiteUnavailable(f"cannot delete {path} at {self.url}: {exc}") from exc


def open_site(url: str) -> Site:
    """The site at ``url`` (``file:///absolute/path`` or ``s3://bucket[/prefix]``);
    ``ConfigurationError`` for anything else."""
    parsed = urlparse(url)
    if parsed.scheme == "file":
        if not parsed.path.startswith("/") or parsed.netloc not in ("", "localhost"):
            raise ConfigurationError(f"a file site needs an absolute path: {url}")
        root = Path(parsed.path)
        make_private_dir(root)
        return Site(url, LocalStore(root), local_root=root)
    if parsed.scheme == "s3" and parsed.netloc:
        config: S3Config = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            config["endpoint"] = endpoint
        allow_http = os.environ.get("AWS_ALLOW_HTTP", "").lower() == "true"
        prefix = parsed.path.strip("/") or None
        store = S3Store(
            parsed.netloc,
            prefix=prefix,
            config=config,
            client_options={"allow_http": True} if allow_http else None,
        )
        return Site(url, store)
    raise ConfigurationError(f"a site is file:///path or s3://bucket/prefix, not {url!r}")


def open_sites(urls: list[str]) -> list[Site]:
    return [open_site(url) for url in urls]
