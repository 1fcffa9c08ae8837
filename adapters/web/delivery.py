"""The outbox's web side: a job asked for in the playground posts nothing anywhere.

The worker writes a job's "started", "result" and "failed" rows for its platform, as for
every job; the playground's job page reads the job itself (polling its status), so there
is nothing to send. This notifier takes the rows of platform `web` so that the dispatcher
marks them delivered: left unclaimed, they would stay pending for good (and /healthz's
outbox_pending with them).
"""

from __future__ import annotations

import logging

from adapters.web.pages import PLATFORM
from bot.types import Delivery, Job

log = logging.getLogger(__name__)


class WebDelivery:
    platform = PLATFORM

    async def deliver(self, delivery: Delivery, job: Job) -> None:
        """Nothing to post: the job page shows the job's state as it changes."""

    async def notice(self, payload: dict) -> None:
        """Nothing to post: approvals are asked for in chat."""

    async def alert(self, text: str) -> None:
        # Alerts go to the chat platforms with a moderators' channel; none is queued for web.
        log.warning("alert: %s", text)
