"""A private PostgreSQL cluster on 127.0.0.1 and a free port, for the tests and bench/scale_out.py.

It uses Debian's server binaries (package `postgresql`, installed by .ci/run): `initdb` into a temporary
folder, `pg_ctl start` listening on 127.0.0.1 only, trust authentication for its one role, and `createdb`
for each database asked for. Run as root, the server commands run as the `postgres` user (PostgreSQL
refuses to run as root). `stop()` shuts it down and removes the folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

ROLE = "explorer"


def server_binaries() -> Path | None:
    """The folder of initdb / pg_ctl / createdb: the newest of Debian's versioned folders, else PATH."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0
    )
    for folder in reversed(versions):
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb and shutil.which("pg_ctl") else None


def why_unavailable() -> str | None:
    """None when a cluster can be started here, else the reason."""
    if server_binaries() is None:
        return "needs PostgreSQL's server binaries: apt-get install postgresql (.ci/run does)"
    no_user = subprocess.run(["id", "postgres"], capture_output=True).returncode != 0
    if os.geteuid() == 0 and (shutil.which("runuser") is None or no_user):
        return "run as root, the server needs the `postgres` user and runuser (Debian's postgresql package adds the user)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "needs the driver: pip install 'dpu-explorer[postgres]' (the dev extra has it)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        binaries = server_binaries()
        if binaries is None:
            raise RuntimeError(why_unavailable() or "no PostgreSQL server binaries")
        self.bin = binaries
        self.root = Path(tempfile.mkdtemp(prefix="explorer-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", ROLE, "--auth=trust", "-E", "UTF8", "--no-sync")
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off -c max_connections=200",
            "-w",
            "-t",
            "60",
            "start",
        )
        self._count = 0

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if self._as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, cwd=self.root)
        if result.returncode:
            log = self.root / "server.log"
            detail = log.read_text()[-2000:] if log.is_file() else ""
            raise RuntimeError(f"{tool} failed: {result.stderr.strip()} {detail}")

    def database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL (driver psycopg 3)."""
        self._count += 1
        name = name or f"study_{self._count}"
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", ROLE, name)
        return f"postgresql+psycopg://{ROLE}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
