"""Attachments before they are downloaded: what can be refused from what the platform says
about them, and how many downloads may run at once.

An attachment costs memory (up to 14 MB each) and bandwidth before anything about the
request is known. So the adapters first ask `AttachmentGate.check` with each file's
declared name, size and type: too many images for the model, a type that is not an image,
a file over the size cap, a quota or a budget already used up are refused with nothing
downloaded. Only then do they download, each file inside a `DownloadSlots.slot`: a few at
once per process and per user, whatever a flood of messages asks for. A download streams
and stops at the cap (the declared size and Content-Length are the sender's word only),
and the bytes are checked again when the request is submitted (bot.images).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

from bot import confirmations
from bot.access import CLI_PLATFORM, off_allow_list
from bot.budget_desk import BudgetDesk
from bot.images import ACCEPTED_FORMATS, MAX_INPUT_BYTES
from bot.money.admission import admission_denial
from bot.money.quotas import QuotaLimits
from bot.roles import RoleDesk, role_budgets, role_quotas, role_refusal
from bot.specs import SpecBuilder, check_image_count
from bot.store.ports import Store
from bot.types import EditRequest, ImagineRequest, InvalidRequest, RefusalReason, Refused
from policies.config import PolicyBook

# What a download may read at most: the size an input image may have.
MAX_DOWNLOAD_BYTES = MAX_INPUT_BYTES
# Declared types the models take ("image/jpg" is what some clients call JPEG).
IMAGE_TYPES = frozenset(ACCEPTED_FORMATS.values()) | {"image/jpg"}
NOT_AN_IMAGE = "{name} is not an image I can use (PNG, JPEG or WebP). Nothing was downloaded."
TOO_LARGE = "{name} is larger than {mb} MB. Nothing was downloaded."
# The least a request can hold: a budget with less than this left admits nothing (but a cache hit).
ONE_MICRO = 1


@dataclass(frozen=True)
class DeclaredFile:
    """An attachment as the platform describes it, before a byte of it is read."""

    name: str
    size: int | None  # bytes, as declared (None: not said)
    mime: str | None  # Content-Type as declared (None: not said)


class AttachmentGate:
    """The checks a request's attachments must pass before they are downloaded."""

    def __init__(
        self,
        store: Store,
        policies: PolicyBook,
        specs: SpecBuilder,
        budgets: BudgetDesk,
        clock: Callable[[], float],
        roles: RoleDesk | None = None,
    ) -> None:
        self._store, self._policies, self._specs, self._budgets = store, policies, specs, budgets
        self._clock = clock
        self._roles = roles or RoleDesk(policies)

    async def check(self, req: ImagineRequest | EditRequest, files: Sequence[DeclaredFile]) -> Refused | None:
        """Why `req` with `files` attached must be refused before any download, or None.
        Passing is no admission: the submit checks everything again, the bytes included.
        A budget used up refuses here though the cache might have answered at $0: which
        cached image would serve is known only from the bytes this check saves downloading."""
        if (refused := off_allow_list(self._policies, req.own_team, req.platform)) is not None:
            return refused
        if not files:
            return None
        if req.idempotency_key is not None and await self._store.job_for_key(
            req.idempotency_key, req.idempotency_window
        ):
            return None  # a repeat (a retried event) gets its first job back from the submit
        try:
            for file in files:
                _check_declared(file)
            model = await self._model_asked(req)
            check_image_count(self._specs.model_today(model), len(files), editing=isinstance(req, EditRequest))
        except InvalidRequest as exc:
            return Refused(RefusalReason.INVALID_REQUEST, str(exc))
        return await self._used_up(req)

    async def _model_asked(self, req: ImagineRequest | EditRequest) -> str | None:
        """The model asked for; an edit's is its image's unless it names one."""
        if req.model or not isinstance(req, EditRequest):
            return req.model
        parent = await self._store.get_image(req.parent_image_id)
        job = await self._store.get_job(parent.job_id) if parent and parent.job_id else None
        return job.spec.model_alias if job else None  # an unknown image: edit() refuses it

    async def _used_up(self, req: ImagineRequest | EditRequest) -> Refused | None:
        """A quota reached or a budget with nothing left, as admission would find them now."""
        policy = self._policies.for_team(req.team)
        if policy.default_team_budget_usd == 0 and not await self._budgets.has_own_team_budget(req.team):
            return confirmations.no_budget_yet(req.team, platform=req.platform, cli=req.platform == CLI_PLATFORM)
        limits = await self._roles.limits(req)
        quotas = role_quotas(QuotaLimits.of(policy), limits)
        default_budget = self._budgets.default_team_budget(req.team)
        extra = role_budgets(req.team, req.user, limits)
        statuses = await self._store.budget_statuses(req.team, req.channel, req.user, default_budget, extra)
        counts = await self._store.quota_counts(req.team, req.user, quotas)
        denied = admission_denial(statuses, ONE_MICRO, quotas, counts, self._clock())
        if denied is None:
            return None
        return role_refusal(limits, denied, None) or confirmations.refusal(denied, None)


def _check_declared(file: DeclaredFile) -> None:
    mime = (file.mime or "").split(";")[0].strip().lower()
    if mime and mime not in IMAGE_TYPES:
        raise InvalidRequest(NOT_AN_IMAGE.format(name=file.name))
    if file.size is not None and file.size > MAX_DOWNLOAD_BYTES:
        raise InvalidRequest(TOO_LARGE.format(name=file.name, mb=MAX_DOWNLOAD_BYTES // 1_048_576))


class DownloadSlots:
    """How many downloads run at once: `per_process` in all, `per_user` for one user.
    A user waits for their own slot before taking one of the process's, so one user's
    flood never holds the slots others wait for."""

    def __init__(self, per_process: int = 8, per_user: int = 2) -> None:
        self._process = asyncio.Semaphore(per_process)
        self._per_user = per_user
        # Per user: their semaphore and how many hold or wait for it (dropped at 0, so
        # the map holds only users with a download under way).
        self._users: dict[str, tuple[asyncio.Semaphore, int]] = {}
        self.waiting = 0  # downloads waiting for a slot (tests probe it)

    @asynccontextmanager
    async def slot(self, user_key: str) -> AsyncIterator[None]:
        sem, users = self._users.get(user_key, (asyncio.Semaphore(self._per_user), 0))
        self._users[user_key] = (sem, users + 1)
        self.waiting += 1
        acquired = False
        try:
            async with sem:
                async with self._process:
                    self.waiting -= 1
                    acquired = True
                    yield
        finally:
            if not acquired:  # cancelled while waiting
                self.waiting -= 1
            sem, users = self._users[user_key]
            if users == 1:
                del self._users[user_key]
            else:
                self._users[user_key] = (sem, users - 1)
