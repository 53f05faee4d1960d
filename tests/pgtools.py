"""PostgreSQL helpers for tests: PostGIS on the shared server, throwaway schemas, private servers.

The machine-wide server (127.0.0.1:5432) is shared with other test runs, so tests
never stop it and never touch objects they did not create: each test works in a
schema of its own that it drops afterwards. A test that must stop and restart a
server (fault tests) starts a private one with :class:`PrivatePostgres`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

PG_BIN = Path(os.environ.get("CITYBRAIN_PG_BIN", "/usr/lib/postgresql/15/bin"))

# Any constant shared by every test run serialises CREATE EXTENSION between them.
_EXTENSION_LOCK = 7_312_201


def ensure_postgis(conn: Any) -> None:
    """CREATE EXTENSION IF NOT EXISTS postgis, safe when other runs do it at the same time."""
    import psycopg

    for attempt in (1, 2):
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", [_EXTENSION_LOCK])
                conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            return
        except psycopg.errors.UniqueViolation:
            # Another run, not using our lock, created it between the check and insert.
            if attempt == 2:
                raise


@contextmanager
def throwaway_schema(dsn: str, prefix: str = "cb_test") -> Iterator[tuple[Any, str]]:
    """An autocommit connection and a fresh schema (PostGIS ready), dropped on exit."""
    import psycopg
    from psycopg import sql

    schema = f"{prefix}_{uuid.uuid4().hex[:10]}"
    conn = psycopg.connect(dsn, autocommit=True)
    try:
        ensure_postgis(conn)
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        yield conn, schema
    finally:
        try:
            if not conn.closed:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE")
                             .format(sql.Identifier(schema)))
        finally:
            conn.close()


class PrivatePostgres:
    """A PostgreSQL server of our own on ``port``, in a temporary folder.

    As root the server runs as the ``postgres`` OS user (``runuser``), since
    PostgreSQL refuses to run as root. Use as a context manager: the server is
    stopped and its folder removed on exit, whatever happened.
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="citybrain-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.running = False
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.root.chmod(0o700)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    @staticmethod
    def available() -> tuple[bool, str]:
        """Whether a private server can be started here, and why not."""
        if not (PG_BIN / "initdb").exists():
            return False, f"PostgreSQL server binaries not found in {PG_BIN}"
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                return False, "running as root and there is no 'postgres' OS user"
            if shutil.which("runuser") is None:
                return False, "running as root and runuser is missing"
        return True, ""

    def _run(self, *args: str) -> None:
        command = [str(PG_BIN / args[0]), *args[1:]]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(args[:2])} failed ({result.returncode}): "
                               f"{result.stderr or result.stdout}\n{log}")

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "-E", "UTF8", "--no-sync", "--no-instructions")

    def start(self) -> None:
        # Small and unsafe-but-fast settings: a throwaway server on a shared 2-core box.
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                   "-c shared_buffers=16MB -c max_connections=20")
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options,
                  "-w", "-t", "60", "start")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        if self.running:
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")
            self.running = False

    def __enter__(self) -> PrivatePostgres:
        try:
            self.init()
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
