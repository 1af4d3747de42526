"""Picking up BlueCherry's scheduled report exports from a folder, or from an SFTP drop.

An SFTP drop is first copied into a private local folder (under the checkpoint directory when there is
one), so a pull reads exactly what a file drop of the same exports would; the copy is removed once read.
"""

from __future__ import annotations

import logging
import os
import socket
import stat
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlparse

from driftwatch.connectors.base import BaseConnector, Pulled
from driftwatch.errors import UserError
from driftwatch.filedrop import FORMATS, MANIFEST, captured_at_of, drop_files, first_record_line, read_entity_file
from driftwatch.locations import temp_dir
from driftwatch.scratch import scratch_folder

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
    always_whole: ClassVar[Mapping[str, str]] = {"*": "its report exports are whole files"}

    def __init__(self, settings: Mapping[str, Any], **kwargs: Any):
        super().__init__(settings, **kwargs)
        if not settings.get("path") and not settings.get("sftp_url"):
            raise UserError(
                f"sources.{self.source}: set `path` (a folder of exports) or `sftp_url` "
                "(sftp://user@host/folder, password in the variable named by sftp_password_env)"
            )

    def pull(self, entities: Iterable[str] | None = None, *, since: datetime | None = None) -> Pulled:
        chosen = set(self._select(entities))
        with self._exports() as (folder, shown):
            files = [p for p in drop_files(folder) if p.suffix in FORMATS and p.stem in chosen]
            if not files:
                raise UserError(f"sources.{self.source}: no exports ({', '.join(sorted(chosen))}) found in {shown}")
            exports = {path: read_entity_file(path, self.source, self.settings, kind=self.name) for path in files}
            for path, export in exports.items():
                if export.note:
                    log.info("%s/%s: %s", shown, path.name, export.note)
            frames = {export.entity: export.frame for export in exports.values()}
            self._origins = {path.stem: (f"{shown}/{path.name}", first_record_line(path)) for path in files}
            return Pulled(self.source, captured_at_of(folder, files), frames)

    def origin(self, entity: str) -> tuple[str, int]:
        """The export file an entity came from and the line number of its first record."""
        return self._origins[entity]

    @contextmanager
    def _exports(self) -> Iterator[tuple[Path, str]]:
        """The local folder holding the exports, and how messages name where they came from. An SFTP drop
        is downloaded into a private scratch folder (under the pull's checkpoint folder when it has one),
        removed once read: the exports hold customer data."""
        if self.settings.get("path"):
            folder = Path(self.settings["path"]).expanduser()
            if not folder.is_dir():
                raise UserError(f"sources.{self.source}.path: {folder} is not a folder")
            yield folder, str(folder)
            return
        root = Path(self.checkpoint_dir) if self.checkpoint_dir is not None else temp_dir()
        with scratch_folder(root / "sftp", self.source) as target:
            yield target, self._download(target)

    def check(self) -> str:
        """The folder is readable and holds exports, or the SFTP drop accepts the login and lists them."""
        if self.settings.get("path"):
            with self._exports() as (folder, shown):
                found = [p.name for p in folder.iterdir() if p.is_file() and p.suffix in FORMATS]
        else:
            with self._sftp() as (sftp, remote, shown):
                found = [name for name in sftp.listdir(remote) if Path(name).suffix in FORMATS]
        if not found:
            raise UserError(f"sources.{self.source}: no export files ({', '.join(FORMATS)}) in {shown}")
        return f"{shown}: {len(found)} export file(s) readable"

    def _download(self, target: Path) -> str:
        """Copy the drop's exports into `target`; returns the drop's URL for messages."""
        with self._sftp() as (sftp, remote, shown):
            for entry in sftp.listdir_attr(remote):
                wanted = Path(entry.filename).suffix in FORMATS or entry.filename == MANIFEST
                if wanted and stat.S_ISREG(entry.st_mode or 0):
                    local = target / entry.filename
                    sftp.get(f"{remote}/{entry.filename}", str(local))
                    os.utime(local, (entry.st_atime or 0, entry.st_mtime or 0))  # keeps the export's own time
        return shown

    @contextmanager
    def _sftp(self) -> Iterator[tuple[Any, str, str]]:
        """A logged-in SFTP session on the drop: (client, remote folder, the drop's URL for messages). Every
        way of failing (unreachable host, refused port, not an SSH server, refused login) is one line."""
        try:
            import paramiko  # optional: only SFTP drops need it
        except ModuleNotFoundError:
            raise UserError(
                f"sources.{self.source}.sftp_url: SFTP drops need paramiko: pip install 'driftwatch[sftp]'"
            ) from None
        # paramiko logs a failed handshake with its traceback; the failure is reported here, in one line.
        logging.getLogger("paramiko").addHandler(logging.NullHandler())
        url = urlparse(self.settings["sftp_url"])
        if url.scheme != "sftp" or not url.hostname:
            raise UserError(f"sources.{self.source}.sftp_url: expected sftp://user@host[:port]/folder")
        password = self.credential("sftp_password_env")
        shown = f"sftp://{url.hostname}{f':{url.port}' if url.port else ''}{url.path or '/'}".rstrip("/")
        transport = None
        try:
            address = (url.hostname, url.port or 22)
            transport = paramiko.Transport(socket.create_connection(address, timeout=self.http_settings.timeout))
            transport.connect(username=url.username, password=password)
            yield paramiko.SFTPClient.from_transport(transport), url.path or ".", shown
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise UserError(f"sources.{self.source}: SFTP {url.hostname}: {type(exc).__name__}: {exc}") from None
        finally:
            if transport is not None:
                transport.close()
