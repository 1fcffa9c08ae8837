"""A throwaway PostgreSQL cluster for fault tests: `initdb` and `pg_ctl` from the installed
binaries, in a temp dir, on its own port, trust auth. Its postmaster can be SIGKILLed and
started again, as a crashed and restarted database server would be.

initdb refuses to run as root, so as root the cluster is made and run as the `postgres`
user (`runuser -u postgres --`) in a directory that user owns.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from tests.support.ports import free_port
from tests.support.probe import eventually


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL's bin directory with initdb and pg_ctl, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    for initdb in reversed(found):
        if (Path(initdb).parent / "pg_ctl").exists():
            return Path(initdb).parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path and shutil.which("pg_ctl") else None


def why_no_cluster() -> str | None:
    """Why a throwaway cluster cannot be run here (for a skip), or None when it can."""
    if postgres_bin_dir() is None:
        return "no PostgreSQL server binaries (initdb, pg_ctl) installed"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no `postgres` user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root without runuser to run initdb as `postgres`"
    return None


class Cluster:
    """One throwaway cluster; `url` is its `postgres` database as the `postgres` user."""

    def __init__(self) -> None:
        bin_dir = postgres_bin_dir()
        assert bin_dir is not None
        self._bin = bin_dir
        self._root = Path(tempfile.mkdtemp(prefix="imagine-pgfault-"))
        self.data = self._root / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            # initdb refuses root: the cluster belongs to the `postgres` user.
            user = pwd.getpwnam("postgres")
            os.chown(self._root, user.pw_uid, user.pw_gid)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self._bin / tool), *args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{tool} failed:\n{done.stdout}\n{done.stderr}"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self._root} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self._root / "log"), "-w", "start")

    def kill(self) -> None:
        """SIGKILL the postmaster, as a crash would; its backends go with it (they exit once
        their postmaster is gone, and start() waits for the port to be free again)."""
        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)

    async def start_again(self, timeout: float = 30, interval: float = 0.2) -> None:
        """Start the killed cluster again, once its orphaned backends have noticed and exited."""

        async def started() -> bool:
            try:
                await asyncio.to_thread(self.start)
            except AssertionError:
                return False  # shared memory still held by a dying backend
            return True

        await eventually(started, timeout, interval=interval, what="the cluster starting again")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        shutil.rmtree(self._root, ignore_errors=True)
