"""A throwaway PostgreSQL cluster on loopback for the test session.

SMSGW_TEST_POSTGRES_URL names a server to use instead (a maintenance database such as
postgresql://postgres@127.0.0.1:5432/postgres). Otherwise the cluster is started from the
machine's PostgreSQL binaries in a temporary directory (as the `postgres` user when running
as root, which PostgreSQL refuses) and removed at the end of the session.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass


class PostgresUnavailable(RuntimeError):
    pass


def _binaries() -> str | None:
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "initdb")):
            return candidate
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Cluster:
    url: str  # maintenance database URL
    directory: str | None = None
    binaries: str | None = None
    run_as: list[str] | None = None

    def stop(self) -> None:
        if self.directory is None:
            return
        subprocess.run(
            (self.run_as or []) + [os.path.join(self.binaries, "pg_ctl"), "-D", os.path.join(self.directory, "data"), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.directory, ignore_errors=True)


def start_cluster() -> Cluster:
    url = os.environ.get("SMSGW_TEST_POSTGRES_URL")
    if url:
        return Cluster(url)
    binaries = _binaries()
    if binaries is None:
        raise PostgresUnavailable("no PostgreSQL binaries (initdb) on this machine and SMSGW_TEST_POSTGRES_URL is not set")
    directory = tempfile.mkdtemp(prefix="smsgw-pg-")
    run_as: list[str] = []
    user = pwd.getpwuid(os.getuid()).pw_name
    if os.getuid() == 0:
        user = "postgres"
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(directory, user="postgres")
    data = os.path.join(directory, "data")
    port = _free_port()
    init = subprocess.run(
        run_as + [os.path.join(binaries, "initdb"), "-D", data, "-U", user, "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if init.returncode != 0:
        raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()}")
    # A test cluster: no fsync (the server process is never killed by the tests), loopback only.
    options = f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={directory} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
    started = subprocess.run(
        run_as + [os.path.join(binaries, "pg_ctl"), "-D", data, "-o", options, "-l", os.path.join(directory, "log"), "-w", "start"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if started.returncode != 0:
        log_path = os.path.join(directory, "log")
        log = ""
        if os.path.exists(log_path):
            with open(log_path) as log_file:
                log = log_file.read()
        raise PostgresUnavailable(f"pg_ctl start failed: {started.stderr.strip()} {log[-2000:]}")
    cluster = Cluster(f"postgresql://{user}@127.0.0.1:{port}/postgres", directory, binaries, run_as)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return cluster
        except OSError:
            time.sleep(0.1)
    cluster.stop()
    raise PostgresUnavailable("the throwaway PostgreSQL cluster did not come up")
