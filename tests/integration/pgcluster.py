"""A real, throwaway PostgreSQL server for the tests (and benchmarks) of the city hub on PostgreSQL.

:class:`Cluster` runs ``initdb`` into a fresh temporary directory and starts ``postgres`` from it,
listening on 127.0.0.1 only, on a port from :mod:`ports` (each xdist worker has its own slice of
numbers, so two workers' clusters never pick the same one), with its unix socket in the same
temporary directory. PostgreSQL refuses to run as root: when the tests run as root (CI does), every
server command runs as the ``postgres`` user through ``runuser`` and the temporary directory is
made that user's. :meth:`Cluster.stop` stops the server and removes the directory.

The server binaries are Debian's (``/usr/lib/postgresql/15/bin`` on these machines; ``make
postgres`` installs them where they are missing). ``MOTCUA_PG_BINDIR`` names another directory.

:class:`Server` is what a test holds: the address of a server on which it may create databases,
either a :class:`Cluster` of its own or the existing server that ``MOTCUA_TEST_POSTGRES_URL``
names (a role that may ``CREATE DATABASE``). :meth:`Server.create_database` makes a fresh, empty
database (``CREATE DATABASE ... TEMPLATE template0``: a file copy, no initdb) and returns its URL.

When no server can be had, :class:`Unavailable` says in one sentence what is missing; the test
fixtures turn it into a failure, never a skip.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from ports import free_port

URL_ENV = "MOTCUA_TEST_POSTGRES_URL"
BINDIR_ENV = "MOTCUA_PG_BINDIR"
DEBIAN_BINDIRS = Path("/usr/lib/postgresql")
PREFERRED_VERSION = "15"
SUPERUSER = "postgres"
"""The cluster's superuser (``initdb -U``); it connects without a password from 127.0.0.1 only."""
START_TIMEOUT_S = 300
"""pg_ctl's wait for the server to accept connections: generous, the machine may be loaded."""

TEST_SETTINGS: Mapping[str, str] = {
    # A throwaway cluster: nothing in it must survive a crash of the machine, and every fsync
    # costs a loaded test machine dearly. A test of durability starts its own Cluster with
    # durable=True.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "32MB",
    "max_connections": "60",
    "max_wal_size": "256MB",
}


class Unavailable(Exception):
    """No PostgreSQL server can be had; the message is one sentence saying what is missing."""


def bindir() -> Path:
    """The directory of the server binaries (``initdb``, ``postgres``, ``pg_ctl``)."""
    if os.environ.get(BINDIR_ENV):
        found = Path(os.environ[BINDIR_ENV])
        if not (found / "postgres").exists():
            raise Unavailable(f"{BINDIR_ENV}={found} holds no 'postgres' binary")
        return found
    preferred = DEBIAN_BINDIRS / PREFERRED_VERSION / "bin"
    if (preferred / "postgres").exists():
        return preferred
    others = sorted(
        (p for p in DEBIAN_BINDIRS.glob("*/bin") if (p / "postgres").exists() and p.parent.name.isdigit()),
        key=lambda p: int(p.parent.name),
    )
    if others:
        return others[-1]
    raise Unavailable(
        f"the PostgreSQL server binaries (initdb, postgres) are not installed in {DEBIAN_BINDIRS}/*/bin: "
        f"run 'make postgres' (Debian's postgresql package), or set {URL_ENV} to an existing server"
    )


def _run_as() -> tuple[list[str], int | None]:
    """The command prefix that runs a server command, and the uid that must own its files."""
    if os.geteuid() != 0:
        return [], None
    try:
        user = pwd.getpwnam(SUPERUSER)
    except KeyError:
        raise Unavailable(
            "the tests run as root, PostgreSQL refuses to, and there is no 'postgres' user to run "
            "it as: install Debian's postgresql package ('make postgres'), which creates it"
        ) from None
    if shutil.which("runuser") is None:
        raise Unavailable("the tests run as root and 'runuser' (util-linux) is missing to start PostgreSQL")
    return ["runuser", "-u", SUPERUSER, "--"], user.pw_uid


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(text[-lines:])


@dataclass
class Cluster:
    """A PostgreSQL cluster of its own in a temporary directory, on 127.0.0.1. Stop it when done."""

    settings: Mapping[str, str] = field(default_factory=lambda: dict(TEST_SETTINGS))
    port: int = 0
    directory: Path | None = None
    _prefix: list[str] = field(default_factory=list)
    _running: bool = False

    @property
    def data(self) -> Path:
        assert self.directory is not None
        return self.directory / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.directory is not None
        return self.directory / "socket"

    @property
    def log_path(self) -> Path:
        assert self.directory is not None
        return self.directory / "postgres.log"

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{quote(user)}@127.0.0.1:{self.port}/{quote(database)}"

    def _command(self, tool: str, *args: str, what: str) -> None:
        binary = str(bindir() / tool)
        try:
            done = subprocess.run(
                [*self._prefix, binary, *args],
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_S + 60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise Unavailable(f"PostgreSQL could not be started: {what} failed ({exc})") from exc
        if done.returncode != 0:
            said = " ".join((done.stderr or done.stdout).split())[-400:]
            log = _tail(self.log_path) if self.directory else ""
            raise Unavailable(
                f"PostgreSQL could not be started: {what} failed ({said}{'; log: ' + log if log else ''})"
            )

    def start(self) -> Cluster:
        bindir()  # says what is missing before anything is made
        self._prefix, owner = _run_as()
        self.directory = Path(tempfile.mkdtemp(prefix="motcua-pg-"))
        self.socket_dir.mkdir()
        if owner is not None:
            for path in (self.directory, self.socket_dir):
                os.chown(path, owner, -1)
        self._command(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            what="initdb",
        )
        # The superuser connects from 127.0.0.1 without a password; every other role needs its
        # password (the tests of wrong credentials rely on it).
        hba = self.data / "pg_hba.conf"
        hba.write_text(
            "local all all trust\n"
            f"host all {SUPERUSER} 127.0.0.1/32 trust\n"
            "host all all 127.0.0.1/32 scram-sha-256\n",
            encoding="utf-8",
        )
        if owner is not None:
            os.chown(hba, owner, -1)
        self.port = free_port()
        options = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={self.port}",
            f"-c unix_socket_directories={self.socket_dir}",
            *(f"-c {name}={value}" for name, value in self.settings.items()),
        ]
        self._command(
            "pg_ctl",
            "start",
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-w",
            "-t",
            str(START_TIMEOUT_S),
            "-o",
            " ".join(options),
            what=f"pg_ctl start on 127.0.0.1:{self.port}",
        )
        self._running = True
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown: open sessions are ended) and remove its directory."""
        try:
            if self._running:
                self._running = False
                with contextlib.suppress(Unavailable):
                    self._command(
                        "pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", what="pg_ctl stop"
                    )
        finally:
            if self.directory is not None:
                shutil.rmtree(self.directory, ignore_errors=True)
                self.directory = None


_names = itertools.count(1)


@dataclass
class Server:
    """A server the tests may create databases on: ``admin_url`` names a role that may."""

    admin_url: str
    cluster: Cluster | None = None

    def _admin(self) -> psycopg.Connection[tuple[object, ...]]:
        try:
            return psycopg.connect(self.admin_url, autocommit=True, connect_timeout=30)
        except psycopg.Error as exc:
            raise Unavailable(f"the test PostgreSQL server does not answer ({_one_line(exc)})") from exc

    def create_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; returns its URL (same role as ``admin_url``)."""
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        name = f"motcua_{prefix}_{worker}_{os.getpid()}_{next(_names)}"
        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        return with_database(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with self._admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    @contextlib.contextmanager
    def database(self, prefix: str = "t") -> Iterator[str]:
        url = self.create_database(prefix)
        try:
            yield url
        finally:
            self.drop_database(url)

    def execute(self, statements: Sequence[str]) -> None:
        """Run statements as the admin role (roles, grants: what a test sets up around a database)."""
        with self._admin() as conn:
            for statement in statements:
                conn.execute(statement.encode())

    def close(self) -> None:
        if self.cluster is not None:
            self.cluster.stop()


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + quote(database)))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def server() -> Server:
    """The server the tests use: ``MOTCUA_TEST_POSTGRES_URL``'s, or a new :class:`Cluster`."""
    existing = os.environ.get(URL_ENV)
    if existing:
        found = Server(existing)
        found._admin().close()  # says now, in one sentence, if it does not answer
        return found
    cluster = Cluster().start()
    made = Server(cluster.url(), cluster)
    try:
        made._admin().close()
    except Unavailable:
        made.close()
        raise
    return made
