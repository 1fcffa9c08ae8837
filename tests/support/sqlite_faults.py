"""Real faults on a SQLite file for the tests: read-only (even for root) and write-locked."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bot.store.sqlite import SQLiteStore


@contextmanager
def read_only(path: Path) -> Iterator[None]:
    """Mode 0444 (0555 for a directory); as root, whom modes do not stop, also immutable."""
    mode = path.stat().st_mode
    path.chmod(0o555 if path.is_dir() else 0o444)
    immutable = os.geteuid() == 0
    if immutable and subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        path.chmod(mode)
        pytest.skip("running as root without chattr +i: a read-only file cannot be made")
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        path.chmod(mode)


@contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """Another process's writer, holding the write lock until the block ends."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.rollback()
        other.close()


async def made(path: Path) -> None:
    """A migrated database at `path`, closed."""
    store = SQLiteStore(str(path))
    await store.open()
    await store.close()


@contextmanager
def small_disk(folder: Path, size: str = "1m") -> Iterator[Path]:
    """A real, small file system (tmpfs) at `folder`, to be filled; skipped where mounting is
    not allowed (not root, or no CAP_SYS_ADMIN): the injected faults cover that case."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def fill(folder: Path) -> Path:
    """A file taking every free byte of `folder`'s file system."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)
    return filler
