"""A throwaway PostgreSQL server for tests: Debian's binaries, a temp cluster, 127.0.0.1 only.

Started once per test session (once per xdist worker); each test gets its own database, a clone of
a template migrated once with Alembic (``create_database(migrated=True)``), given up after the test
(``drop_created``, called by conftest after every test). As root, the cluster runs as the ``postgres``
user because initdb refuses to run as root.

A clone costs the server about 0.3 s of CPU (``CREATE DATABASE`` copies the template's 9 MB of files),
hundreds of times a run. So a migrated database a test has finished with is not dropped but handed to
a later test as new (``recycle``): every connection to it ended, renamed (whatever the test left
behind, a pooled engine or a killed child's session, can never reach it again), its tables emptied
and its sequences restarted, and its schema checked against a fresh clone's; anything else (a
schema a test changed, a connection that would not end) and it is dropped as before.
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


def _new_name() -> str:
    return "t_" + uuid.uuid4().hex[:12]


# A used clone made new again: every table emptied but Alembic's (TRUNCATE only those that hold
# rows: cheaper than all of them; CASCADE only because an empty table may refer to them), every
# sequence that handed out a number restarted.
EMPTY = """
DO $$
DECLARE
    rel text;
    filled boolean;
    used text[] := '{}';
BEGIN
    FOR rel IN
        SELECT format('%I.%I', schemaname, tablename) FROM pg_tables
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND tablename <> 'alembic_version'
    LOOP
        EXECUTE format('SELECT EXISTS (SELECT FROM %s)', rel) INTO filled;
        IF filled THEN
            used := used || rel;
        END IF;
    END LOOP;
    IF cardinality(used) > 0 THEN
        EXECUTE 'TRUNCATE ' || array_to_string(used, ', ') || ' CASCADE';
    END IF;
    FOR rel IN
        SELECT format('%I.%I', schemaname, sequencename) FROM pg_sequences
        WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND last_value IS NOT NULL
    LOOP
        EXECUTE format('ALTER SEQUENCE %s RESTART', rel);
    END LOOP;
END $$
"""

# A digest of what a test could change in a database besides its rows: schemas, relations, columns,
# constraints, indexes, triggers, rules, policies, grants, functions, types, extensions, the
# database's own settings, large objects, and Alembic's revision. A recycled database must match a
# fresh clone's.
SCHEMA = """
WITH ours AS (
    SELECT oid FROM pg_namespace
    WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND nspname NOT LIKE 'pg\\_%temp\\_%'
)
SELECT md5(string_agg(item, E'\\n' ORDER BY item)) FROM (
    SELECT format('schema %s', nspname) FROM pg_namespace WHERE oid IN (SELECT oid FROM ours)
    UNION ALL
    SELECT format('relation %s %s %s', oid::regclass, relkind, relacl) FROM pg_class
    WHERE relnamespace IN (SELECT oid FROM ours)
    UNION ALL
    SELECT format('column %s.%s %s %s %s', a.attrelid::regclass, a.attname, format_type(a.atttypid, a.atttypmod),
                  a.attnotnull, pg_get_expr(d.adbin, d.adrelid))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE c.relnamespace IN (SELECT oid FROM ours) AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT format('constraint %s %s %s', conrelid::regclass, conname, pg_get_constraintdef(oid)) FROM pg_constraint
    WHERE connamespace IN (SELECT oid FROM ours)
    UNION ALL
    SELECT format('index %s', pg_get_indexdef(i.indexrelid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
    WHERE c.relnamespace IN (SELECT oid FROM ours)
    UNION ALL
    SELECT format('trigger %s %s %s', tgrelid::regclass, tgname, tgenabled) FROM pg_trigger WHERE NOT tgisinternal
    UNION ALL
    SELECT format('rule %s %s', r.ev_class::regclass, pg_get_ruledef(r.oid)) FROM pg_rewrite r
    JOIN pg_class c ON c.oid = r.ev_class WHERE c.relnamespace IN (SELECT oid FROM ours)
    UNION ALL
    SELECT format('policy %s %s', polrelid::regclass, polname) FROM pg_policy
    UNION ALL
    SELECT format('function %s %s', oid::regprocedure, md5(prosrc)) FROM pg_proc
    WHERE pronamespace IN (SELECT oid FROM ours)
    UNION ALL
    SELECT format('type %s %s', oid::regtype, typtype) FROM pg_type WHERE typnamespace IN (SELECT oid FROM ours)
    UNION ALL
    SELECT format('enum %s %s %s', enumtypid::regtype, enumsortorder, enumlabel) FROM pg_enum
    UNION ALL
    SELECT format('extension %s %s', extname, extversion) FROM pg_extension
    UNION ALL
    SELECT format('database %s %s %s', datconnlimit, datallowconn, datacl) FROM pg_database
    WHERE datname = current_database()
    UNION ALL
    SELECT format('setting %s %s', setrole, setconfig) FROM pg_db_role_setting
    WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
    UNION ALL
    SELECT format('large objects %s', count(*)) FROM pg_largeobject_metadata
    UNION ALL
    SELECT format('alembic %s', version_num) FROM alembic_version
) AS schema(item)
"""


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
        self._schema: str | None = None  # SCHEMA's digest of a fresh clone of the template
        self._clones: set[str] = set()  # the created databases that are clones of the template
        self.recycled: list[str] = []  # clones made new again after their test, for the next ones
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
        """A new database, empty or (``migrated``) as a clone of the migrated template is when made (a
        recycled one when there is one); given up by ``drop_created``."""
        if migrated and self.recycled:
            name = self.recycled.pop()
        else:
            name = _new_name()
            # FILE_COPY: a small template is copied as files, faster than WAL_LOG's page by page (PG 15+).
            clone = f' TEMPLATE "{self.template()}" STRATEGY FILE_COPY' if migrated else ""
            self._admin(f'CREATE DATABASE "{name}"{clone}')
            if migrated and self._schema is None:
                self._schema = self._digest(name)
        if migrated:
            self._clones.add(name)
        self.created.append(name)
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, ending whatever is still connected to it (a test's cached engine, a killed child's)."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._clones.discard(name)
        if name in self.created:
            self.created.remove(name)

    def drop_created(self, since: int = 0) -> None:
        """Give up the databases created after the first ``since`` ones: clones of the template are
        recycled for later tests, the others dropped."""
        for name in self.created[since:][::-1]:
            if name in self._clones:
                self.recycle(name)
            else:
                self.drop_database(name)

    def recycle(self, name: str) -> None:
        """Make the clone ``name`` new again under another name, for a later ``create_database(migrated=True)``;
        drop it when that cannot be done."""
        fresh = _new_name()
        try:
            with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                conn.execute(f'ALTER DATABASE "{name}" RENAME TO "{fresh}"')  # fails while anyone is connected
        except psycopg.Error:
            self.drop_database(name)
            return
        self._clones.discard(name)
        self.created.remove(name)
        try:
            with psycopg.connect(self.dsn(fresh), autocommit=True) as conn:
                conn.execute("SET lock_timeout = '10s'")
                conn.execute(EMPTY)
            as_new = self._digest(fresh) == self._schema
        except psycopg.Error:
            as_new = False
        if as_new:
            self.recycled.append(fresh)
        else:
            self._admin(f'DROP DATABASE IF EXISTS "{fresh}" WITH (FORCE)')

    def _digest(self, name: str) -> str:
        with psycopg.connect(self.dsn(name), autocommit=True) as conn:
            row = conn.execute(SCHEMA).fetchone()
        assert row is not None
        return str(row[0])

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
