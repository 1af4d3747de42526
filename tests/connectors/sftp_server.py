"""A real SFTP server on loopback (paramiko's server side) serving one folder, for the BlueCherry drop tests."""

from __future__ import annotations

import os
import socket
import threading
from pathlib import Path

import paramiko

HOST_KEY = paramiko.RSAKey.generate(2048)


class _Auth(paramiko.ServerInterface):
    def __init__(self, user: str, password: str):
        self.user, self.password = user, password

    def check_auth_password(self, username: str, password: str) -> int:
        ok = (username, password) == (self.user, self.password)
        return paramiko.AUTH_SUCCESSFUL if ok else paramiko.AUTH_FAILED

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_channel_request(self, kind: str, chanid: int) -> int:
        return paramiko.OPEN_SUCCEEDED if kind == "session" else paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED


class _Handle(paramiko.SFTPHandle):
    def stat(self) -> paramiko.SFTPAttributes:
        return paramiko.SFTPAttributes.from_stat(os.fstat(self.readfile.fileno()))


def _sftp_interface(root: Path) -> type[paramiko.SFTPServerInterface]:
    class Folder(paramiko.SFTPServerInterface):
        def _local(self, path: str) -> Path:
            return root / path.lstrip("/")

        def list_folder(self, path: str):
            folder = self._local(path)
            return [paramiko.SFTPAttributes.from_stat(p.stat(), p.name) for p in sorted(folder.iterdir())]

        def stat(self, path: str):
            return paramiko.SFTPAttributes.from_stat(self._local(path).stat())

        lstat = stat

        def open(self, path: str, flags: int, attr):
            handle = _Handle(flags)
            handle.readfile = open(self._local(path), "rb")  # noqa: SIM115 (closed by paramiko with the handle)
            return handle

    return Folder


class SftpServer:
    """`with SftpServer(folder, "user", "pw") as server: server.url` -> sftp://user@127.0.0.1:PORT/"""

    def __init__(self, root: Path, user: str, password: str):
        self.root, self.user, self.password = root, user, password
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._transports: list[paramiko.Transport] = []

    @property
    def url(self) -> str:
        return f"sftp://{self.user}@127.0.0.1:{self._sock.getsockname()[1]}/"

    def __enter__(self) -> SftpServer:
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(4)
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            transport = paramiko.Transport(conn)
            transport.add_server_key(HOST_KEY)
            transport.set_subsystem_handler("sftp", paramiko.SFTPServer, _sftp_interface(self.root))
            transport.start_server(server=_Auth(self.user, self.password))
            self._transports.append(transport)

    def __exit__(self, *exc: object) -> None:
        self._sock.close()
        for transport in self._transports:
            transport.close()
