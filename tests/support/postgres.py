"""A throwaway PostgreSQL server for tests: Debian's binaries, a temp cluster, 127.0.0.1 only.

Started once per test session (once per xdist worker); each test gets its own database, a clone of
a template migrated once with Alembic (``create_database(migrated=True)``), dropped after the test
(``drop_created``, called by conftest after every test). As root, the cluster runs as the ``postgres``
user because initdb refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg


def _pg_bin() -> Path | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        bin_dir = _pg_bin()
        if bin_dir is None:
            raise RuntimeError("PostgreSQL binaries not found: apt-get install postgresql")
        self.bin = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="db-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        self._template: str | None = None
        self.created: list[str] = []  # databases not dropped yet, oldest first

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True)

    def start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        for attempt in range(3):  # the free port may be taken between probing and binding (parallel workers)
            try:
                self._pg_ctl_start()
                break
            except subprocess.CalledProcessError:
                if attempt == 2:
                    raise
                self.port = free_port()
        deadline = time.monotonic() + 30
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _pg_ctl_start(self) -> None:
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
            "start",
        )

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def template(self) -> str:
        """The database migrated to head with Alembic, once per server; closed to connections."""
        if self._template is None:
            from tests.support.db import migrate

            name = "tmpl_migrated"
            self._admin(f'CREATE DATABASE "{name}"')
            try:
                migrate(self.url(name))
            except BaseException:  # so the next test fails on the migration too, not on "already exists"
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                raise
            # A clone fails while anything is connected to its template: let nothing connect by mistake.
            self._admin(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            self._template = name
        return self._template

    def create_database(self, *, migrated: bool = False) -> str:
        """A new database, empty or (``migrated``) a clone of the migrated template; dropped by ``drop_created``."""
        name = "t_" + uuid.uuid4().hex[:12]
        # FILE_COPY: a small template is copied as files, faster than WAL_LOG's page by page (PG 15+).
        clone = f' TEMPLATE "{self.template()}" STRATEGY FILE_COPY' if migrated else ""
        self._admin(f'CREATE DATABASE "{name}"{clone}')
        self.created.append(name)
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending whatever is still connected to it (a test's cached engine, a killed child's)."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def drop_created(self, since: int = 0) -> None:
        """Drop the databases created after the first ``since`` ones."""
        for name in self.created[since:][::-1]:
            self.drop_database(name)

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
