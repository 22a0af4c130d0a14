"""Where the city keeps its fleet: ``DIR/fleet.db`` (SQLite, the default), or a PostgreSQL database.

``motcua central init --database postgresql://USER@HOST[:PORT]/DB`` records the database in
``DIR/database.json`` (no secret in it: the URL without a password, and the path of the password
file when one was given); every later command that opens the city (``central serve``, ``node
add``, ...) reads it and opens the fleet there (:func:`open_fleet`). Without that file the fleet
is ``DIR/fleet.db`` as always.

The password never sits in the URL, the config or a message: it comes from the file named by
``--database-password-file`` (its first line), or from libpq's own places (``PGPASSFILE``,
``~/.pgpass``, ``PGPASSWORD``). A URL that carries a password is refused.

What can go wrong on the way to the server says so in one sentence (:class:`DatabaseUnavailable`):
the server refused the connection or did not answer, the host is unknown, the database does not
exist, the credentials are wrong or missing. A database whose schema is newer than this software
is refused by the migration runner (:class:`sync.errors.SchemaTooNew`).

Only the fleet store runs on PostgreSQL so far; the hub's op log stays in ``DIR/motcua.db``
(docs/decisions/0014-postgresql-hub.md says what comes next).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from central.fleet import FLEET_FILE, FleetStore, SqliteFleet
from edge.errors import ConfigError

if TYPE_CHECKING:
    import psycopg

DATABASE_FILE = "database.json"
CONNECT_TIMEOUT_S = 10


class DatabaseUnavailable(ConfigError):
    """The city's PostgreSQL database cannot be reached or used (the message says why)."""


@dataclass(frozen=True)
class DatabaseConfig:
    """``DIR/database.json``: the city's PostgreSQL database."""

    url: str
    """``postgresql://USER@HOST[:PORT]/DB`` (libpq's URL form, never with a password)."""
    password_file: str | None = None
    """A file whose first line is the password (absolute path); None: libpq finds it."""

    @property
    def where(self) -> str:
        """The database for messages: user, host, port and name (never a password)."""
        info = _conninfo(self.url)
        host = info.get("host") or "localhost"
        port = info.get("port") or "5432"
        place = host if host.startswith("/") else f"{host}:{port}"
        user = f"{info['user']}@" if info.get("user") else ""
        return f"{user}{place}/{info.get('dbname', '')}"

    def connect_kwargs(self) -> dict[str, Any]:
        """What psycopg.connect takes besides the URL (the password read now, never stored)."""
        kwargs: dict[str, Any] = {"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "motcua-central"}
        if self.password_file:
            try:
                lines = Path(self.password_file).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise DatabaseUnavailable(
                    f"the database password file {self.password_file} cannot be read ({exc.strerror})"
                ) from exc
            kwargs["password"] = lines[0] if lines else ""
        return kwargs


def _conninfo(url: str) -> dict[str, Any]:
    from psycopg import conninfo
    from psycopg.errors import ProgrammingError

    try:
        return conninfo.conninfo_to_dict(url)
    except ProgrammingError:
        raise ConfigError(
            "the database is not a valid PostgreSQL URL: write it as postgresql://USER@HOST:PORT/DATABASE"
        ) from None


def database_config(url: str, password_file: str | Path | None = None) -> DatabaseConfig:
    """Check a ``--database`` URL (and password file) as given on the command line."""
    if not re.match(r"^postgres(ql)?://", url):
        raise ConfigError(
            "--database takes a PostgreSQL URL such as postgresql://motcua@db.example:5432/motcua"
        )
    info = _conninfo(url)
    if "password" in info:
        raise ConfigError(
            "the database URL carries a password; leave it out (the URL is written to the city's "
            "config) and give it with --database-password-file FILE, PGPASSFILE or ~/.pgpass"
        )
    if not info.get("dbname"):
        raise ConfigError("the database URL names no database: postgresql://USER@HOST:PORT/DATABASE")
    file = None
    if password_file is not None:
        path = Path(password_file).resolve()
        if not path.is_file():
            raise ConfigError(f"the database password file {path} does not exist")
        file = str(path)
    return DatabaseConfig(url, file)


def write_config(directory: Path, config: DatabaseConfig) -> None:
    (directory / DATABASE_FILE).write_text(json.dumps(asdict(config), indent=2) + "\n", encoding="utf-8")


def read_config(directory: Path) -> DatabaseConfig | None:
    """The city's database, or None when the fleet is ``DIR/fleet.db``."""
    path = directory / DATABASE_FILE
    if not path.exists():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return DatabaseConfig(str(raw["url"]), raw.get("password_file"))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is damaged ({exc}): write it again (url, password_file)") from exc


def _sentence(config: DatabaseConfig, exc: Exception) -> str:
    """One sentence for a failed connection, from libpq's message (which never holds a password)."""
    info = _conninfo(config.url)
    said = " ".join(str(exc).split())
    host = info.get("host") or "localhost"
    place = host if host.startswith("/") else f"{host}:{info.get('port') or '5432'}"
    user = info.get("user") or "(your login name)"
    database = info.get("dbname")
    if "does not exist" in said and "database" in said:
        return (
            f'the PostgreSQL server at {place} has no database "{database}": create it first '
            f"(createdb -O {user} {database})"
        )
    if "password authentication failed" in said or re.search(r'role ".*" does not exist', said):
        return (
            f'PostgreSQL refused the credentials of user "{user}" on {place}: check the user, and the '
            "password in --database-password-file, PGPASSFILE or PGPASSWORD"
        )
    if "no password supplied" in said:
        return (
            f'PostgreSQL on {place} asks a password of user "{user}" and none was given: pass '
            "--database-password-file FILE to 'motcua central init', or set PGPASSFILE"
        )
    if "Connection refused" in said:
        return f"the PostgreSQL server at {place} refused the connection: is it running and listening there?"
    if "timeout expired" in said:
        return f"the PostgreSQL server at {place} did not answer within {CONNECT_TIMEOUT_S} s"
    if "resolve host" in said or "translate host name" in said:
        return f'the PostgreSQL host "{host}" is unknown (its name does not resolve)'
    if "No such file or directory" in said and host.startswith("/"):
        return f"no PostgreSQL server listens on the socket in {host}: is it running?"
    return f"could not connect to PostgreSQL at {config.where}: {said[:300]}"


def connect(config: DatabaseConfig) -> psycopg.Connection[tuple[Any, ...]]:
    """One connection in autocommit mode (for migrations and checks); errors in one sentence."""
    import psycopg

    try:
        return psycopg.connect(config.url, autocommit=True, **config.connect_kwargs())
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(_sentence(config, exc)) from None


def prepare(config: DatabaseConfig, *, new_city: bool) -> None:
    """Reach the database and bring the fleet's tables up to date (a newer schema is refused).

    ``new_city``: ``motcua central init``, which refuses a database that already holds a fleet
    with nodes in it (another city's, or this one's from before)."""
    from central import pgfleet
    from sync import pgmigrations

    with connect(config) as conn:
        if new_city:
            have = pgmigrations.current_version(conn, pgfleet.NAMESPACE)
            known = pgfleet.MIGRATIONS[-1].version
            if 0 < have <= known:
                counted = conn.execute("SELECT count(*) FROM nodes").fetchone()
                nodes = int(counted[0]) if counted else 0
                if nodes:
                    raise ConfigError(
                        f"the database {config.where} already holds a city's fleet ({nodes} node(s) "
                        "registered): give 'motcua central init' an empty database"
                    )
        pgfleet.migrate(conn)


def open_fleet(directory: Path) -> FleetStore:
    """The city's fleet store: on PostgreSQL when ``DIR/database.json`` says so, else fleet.db."""
    config = read_config(directory)
    if config is None:
        return SqliteFleet(directory / FLEET_FILE)
    from psycopg_pool import ConnectionPool

    from central import pgfleet

    prepare(config, new_city=False)
    kwargs = {**config.connect_kwargs(), "autocommit": True}
    pool: ConnectionPool[Any] = ConnectionPool(
        config.url, kwargs=kwargs, min_size=1, max_size=pgfleet.POOL_SIZE, open=False, name="fleet"
    )
    pool.open(wait=False)
    return pgfleet.PostgresFleet(pool)


def is_city(directory: Path) -> bool:
    """Whether ``directory`` holds a city (a fleet, on SQLite or PostgreSQL)."""
    return (directory / FLEET_FILE).exists() or (directory / DATABASE_FILE).exists()
