"""Picking up BlueCherry's scheduled report exports from a folder, or from an SFTP drop.

An SFTP drop is first copied into a local folder (the checkpoint directory when there is one), so a pull
reads exactly what a file drop of the same exports would.
"""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from driftwatch.connectors.base import BaseConnector, Pulled
from driftwatch.errors import UserError
from driftwatch.filedrop import FORMATS, MANIFEST, captured_at_of, first_record_line, read_entity_file

log = logging.getLogger("driftwatch.connectors")

EXPORTED = (
    "products",
    "pack_components",
    "inventory",
    "customers",
    "orders",
    "order_lines",
    "shipments",
    "returns",
    "journal_entries",
)


class Connector(BaseConnector):
    name = "bluecherry"
    entities = EXPORTED
    settings_keys = frozenset({"path", "sftp_url", "sftp_password_env"})

    def __init__(self, settings: Mapping[str, Any], **kwargs: Any):
        super().__init__(settings, **kwargs)
        if not settings.get("path") and not settings.get("sftp_url"):
            raise UserError(
                f"sources.{self.source}: set `path` (a folder of exports) or `sftp_url` "
                "(sftp://user@host/folder, password in the variable named by sftp_password_env)"
            )

    def pull(self, entities: Iterable[str] | None = None, *, since: datetime | None = None) -> Pulled:
        chosen = set(self._select(entities))
        folder = self._local_folder()
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in FORMATS and p.stem in chosen)
        if not files:
            raise UserError(f"sources.{self.source}: no exports ({', '.join(sorted(chosen))}) found in {folder}")
        exports = {path: read_entity_file(path, self.source, self.settings, kind=self.name) for path in files}
        for path, export in exports.items():
            if export.note:
                log.info("%s: %s", path, export.note)
        frames = {export.entity: export.frame for export in exports.values()}
        self._origins = {path.stem: (str(path), first_record_line(path)) for path in files}
        return Pulled(self.source, captured_at_of(folder, files), frames)

    def origin(self, entity: str) -> tuple[str, int]:
        """The export file an entity came from and the line number of its first record."""
        return self._origins[entity]

    def _local_folder(self) -> Path:
        if self.settings.get("path"):
            folder = Path(self.settings["path"])
            if not folder.is_dir():
                raise UserError(f"sources.{self.source}.path: {folder} is not a folder")
            return folder
        return self._download()

    def _download(self) -> Path:
        import paramiko  # optional: only SFTP drops need it

        url = urlparse(self.settings["sftp_url"])
        if url.scheme != "sftp" or not url.hostname:
            raise UserError(f"sources.{self.source}.sftp_url: expected sftp://user@host[:port]/folder")
        target = Path(tempfile.mkdtemp(prefix="bluecherry-", dir=self.checkpoint_dir))
        transport = paramiko.Transport((url.hostname, url.port or 22))
        try:
            transport.connect(username=url.username, password=self.credential("sftp_password_env"))
            sftp = paramiko.SFTPClient.from_transport(transport)
            remote = url.path or "."
            for entry in sftp.listdir_attr(remote):
                wanted = Path(entry.filename).suffix in FORMATS or entry.filename == MANIFEST
                if wanted and stat.S_ISREG(entry.st_mode or 0):
                    local = target / entry.filename
                    sftp.get(f"{remote}/{entry.filename}", str(local))
                    os.utime(local, (entry.st_atime or 0, entry.st_mtime or 0))  # keeps the export's own time
        except (paramiko.SSHException, OSError) as exc:
            raise UserError(f"sources.{self.source}: SFTP {url.hostname}: {type(exc).__name__}: {exc}") from None
        finally:
            transport.close()
        return target
