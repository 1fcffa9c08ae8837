"""Ports for tests that need one before anything listens on it.

Whatever listens in a test binds port 0 and reads back the port it got (the loopback
fakes, the bot with PORT=0). What is left here: a port that must refuse connections, held
for as long as it must, and `free_port` for callers that cannot pass port 0 yet.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port nobody listens on, for as long as the block runs: it is bound here and
    never listened on, so a connection to it is refused and no other process can take it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def free_port() -> int:
    """A port free a moment ago, which another process may take before the caller binds it.
    Prefer PORT=0 and `listening_port` (or `start_bot`); bench/ still uses this.

    Drawn from below the kernel's ephemeral range, so no port-0 listener and no outgoing
    connection elsewhere on the machine (other suites run at the same time) can be given
    it meanwhile: only another caller picking the same number at random could."""
    low = _ephemeral_ports()[0]
    for _ in range(100) if low > _FIXED_PORTS_FROM + 1000 else ():
        port = random.randrange(_FIXED_PORTS_FROM, low)
        with socket.socket() as s:
            try:
                s.bind(("", port))  # every address, as the bot binds it
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_FIXED_PORTS_FROM = 20_000


def _ephemeral_ports() -> tuple[int, int]:
    """The kernel's range for port 0 and outgoing connections (Linux; elsewhere its default)."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999
