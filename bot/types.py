"""Domain types shared by the core, the store and the adapters.

Plain dataclasses: no platform or SDK types cross this line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from bot.teams import Membership

# Defined with the policies that raise it (policies/ imports nothing from bot/); re-exported for the core.
from policies.errors import InvalidRequest  # noqa: F401
from policies.roles import PlatformRole


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"
    DEAD = "dead"

    @property
    def terminal(self) -> bool:
        return self not in (JobState.QUEUED, JobState.RUNNING)


class Lane(StrEnum):
    """How a request is served, and so what it costs (see bot/money/pricing.py)."""

    STANDARD = "standard"
    BATCH = "batch"  # Google's Batch API: half price, within hours
    FLEX = "flex"  # generateContent at service_tier flex: half price, minutes, sheddable
    PRIORITY = "priority"  # generateContent at service_tier priority: dearer, never shed

    @property
    def interactive(self) -> bool:
        """Answered in seconds, so its latency is charted and alerted on."""
        return self in (Lane.STANDARD, Lane.PRIORITY)


def blend_note(input_images: int) -> str | None:
    """ "blend of 3 images" for a request that sends the model several images; None otherwise."""
    return f"blend of {input_images} images" if input_images >= 2 else None


@dataclass(frozen=True)
class InputImage:
    data: bytes
    mime: str


@dataclass(frozen=True)
class CheckedImage:
    """Image bytes that passed `bot.images.check`: real, readable, measured."""

    data: bytes
    mime: str
    width: int
    height: int
    sha256: str


@dataclass(frozen=True, kw_only=True)
class _Request(Membership):
    """What every request from an adapter carries besides its text."""

    team: str
    channel: str
    user: str
    platform: str
    aspect_ratio: str | None = None
    size: str | None = None
    model: str | None = None
    # "flex", "batch", "priority" or "standard"; None: standard, or flex when `relax` is set.
    lane: str | None = None
    relax: bool = False  # --relax: the Flex lane (kept for callers that say relax=True)
    images: tuple[InputImage, ...] = ()
    # Opaque platform context the notifier needs to post the result
    # (a Slack thread ts, a Discord interaction token...). The core never reads it.
    delivery: dict[str, Any] = field(default_factory=dict)
    # Set by adapters from the platform's event id, so a retried event
    # never becomes a second job.
    idempotency_key: str | None = None
    # Seconds the key stays taken (None: for good). Button presses use a short
    # window: a double click makes one job, a press a minute later another.
    idempotency_window: float | None = None
    # The user saw a NeedsConfirmation for this request and chose to run it.
    confirmed: bool = False
    # Reroll: make a new image even if an identical request was answered recently.
    fresh: bool = False
    # The adapter posts a status message for the job and then calls
    # attach_delivery; the job waits for that, so a failed post can still cancel it.
    announced: bool = False
    # What the platform itself says about the asker (never their text): the roles it read
    # from the interaction (Discord), or None when the core must look them up (Slack,
    # bot.roles); and whether it counts them an admin. Per-role limits follow from them.
    roles: tuple[PlatformRole, ...] | None = None
    platform_admin: bool = False
    # A moderator's [Approve] of a budget refusal (bot/approvals.py): the approval claimed
    # with the job, and who approved it; the job then runs past its budgets.
    approval_token: str | None = None
    approved_by: str | None = None
    # The asker's own team when `team` is its organisation's key (bot/orgs.py): the
    # allow-list and the team's own moderators name it. None: `team` is the asker's own.
    member_team: str | None = None


@dataclass(frozen=True, kw_only=True)
class ImagineRequest(_Request):
    """A new image from a prompt (and optional reference images)."""

    prompt: str


@dataclass(frozen=True, kw_only=True)
class EditRequest(_Request):
    """Edit an image the bot made: the parent image plus an instruction.

    Unset options (model, size, aspect ratio) carry over from the parent.
    """

    parent_image_id: int
    instruction: str


@dataclass(frozen=True)
class GenerationSpec:
    """Everything a provider needs for one call; stored on the job as JSON."""

    prompt: str
    model_alias: str
    model_id: str
    aspect_ratio: str
    size: str
    lane: Lane = Lane.STANDARD
    send_image_size: bool = True
    parent_image_id: int | None = None
    # Where to go when the primary route is overloaded or rate-limited: "flash",
    # or "route:alias" such as "openrouter:pro". From the team's policy.
    fallbacks: tuple[str, ...] = ()
    # Hedging (the team's hedge_after_s): when the primary has not answered after this
    # many seconds, the next route in the chain is asked too and the first image wins.
    hedge_after_s: float | None = None
    # Images the model is sent with the prompt: the attachments, and an edit's own image.
    # Two or more make a blend, which the gallery says ("blend of 3 images").
    input_images: int = 0
    # An approved overage ([Ask a moderator]): the moderator who let it past the budget.
    approved_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        # approved_by only when set: every other job's stored request stays as it was.
        overage = {"approved_by": self.approved_by} if self.approved_by else {}
        return overage | {
            "prompt": self.prompt,
            "model_alias": self.model_alias,
            "model_id": self.model_id,
            "aspect_ratio": self.aspect_ratio,
            "size": self.size,
            "lane": self.lane.value,
            "send_image_size": self.send_image_size,
            "parent_image_id": self.parent_image_id,
            "fallbacks": list(self.fallbacks),
            "hedge_after_s": self.hedge_after_s,
            "input_images": self.input_images,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationSpec:
        return cls(
            **{**data, "lane": Lane(data.get("lane", "standard")), "fallbacks": tuple(data.get("fallbacks", ()))}
        )


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    output_tokens: int = 0
    image_tokens: int = 0
    text_tokens: int = 0
    thoughts_tokens: int = 0
    total_tokens: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class GenerationResult:
    image: InputImage
    model_version: str
    usage: Usage | None
    text: str | None = None
    response_id: str | None = None
    # What the provider says it charged (gateways report it); settles instead of the table.
    cost_usd: Decimal | None = None
    # Set by the router: which route answered, with which model, and what it replaced.
    route: str | None = None
    model_alias: str | None = None
    fallback_from: str | None = None
    # The provider call alone (set by the router), without waiting for a rate limit or a slot.
    call_seconds: float | None = None
    # The lane Google says it served (and bills) the call at, when it says: Priority past its
    # limit is served at Standard. None: the lane asked for.
    served_lane: Lane | None = None
    # A hedged attempt's other call (set by the router): billed, or cancelled unanswered.
    hedge: HedgeCall | None = None


@dataclass(frozen=True)
class HedgeCall:
    """The call of a hedged attempt that did not make the image.

    `won` says which call that was: False, the hedge lost (the primary's image
    won); True, the hedge's image won and this is the primary's call. `answer`
    is what it returned before it was cancelled (an image, or an error billed
    for its tokens), or None: cancelled unanswered, so it reported no usage to
    settle, though Google may bill it all the same."""

    route: str
    model_alias: str
    after_s: float  # how long the primary ran before the hedge was sent
    won: bool
    answer: GenerationResult | Exception | None = None


@dataclass(frozen=True)
class NewJob:
    team: str
    channel: str
    user: str
    platform: str
    kind: str
    spec: GenerationSpec
    max_attempts: int
    delivery: dict[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    idempotency_window: float | None = None  # see _Request
    # Requests with the same key may reuse a recent result (see Store.submit).
    cache_key: str | None = None
    # Not leased until attach_delivery says the adapter told the user; cancelled and
    # released, never started, if that does not come within ANNOUNCE_WINDOW.
    announced: bool = False


@dataclass(frozen=True)
class Job:
    id: int
    team: str
    channel: str
    user: str
    platform: str
    kind: str
    spec: GenerationSpec
    state: JobState
    attempt: int
    max_attempts: int
    delivery: dict[str, Any]
    created_at: float
    lease_until: float | None = None
    worker_id: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    result_image_id: int | None = None
    result: dict[str, Any] | None = None
    error_class: str | None = None
    error_detail: str | None = None
    # Micro-dollars still held for this job (its open reservation); 0 when none.
    held_micros: int = 0
    # Identical requests share it (None for a reroll, which wants a new image).
    cache_key: str | None = None
    # Whether the job has images of its own (attachments) to read before its call. A lease
    # says; True wherever unknown, so they are read.
    has_inputs: bool = True


@dataclass(frozen=True)
class StoredImage:
    id: int
    job_id: int | None
    role: str
    mime: str
    width: int
    height: int
    sha256: str
    data: bytes
    parent_image_id: int | None = None


@dataclass(frozen=True)
class Delivery:
    """One outbox row: a durable message to a platform about a job (or an operator alert)."""

    id: int
    key: str
    job_id: int | None  # None for kind "alert"
    platform: str
    kind: str
    payload: dict[str, Any]
    attempts: int


class RefusalReason(StrEnum):
    INVALID_REQUEST = "invalid_request"
    MODERATION = "moderation"
    NOT_ALLOWED_HERE = "not_allowed_here"
    TEAM_NOT_ALLOWED = "team_not_allowed"
    UNPRICED = "unpriced"
    BUDGET_EXHAUSTED = "budget_exhausted"
    QUOTA_EXCEEDED = "quota_exceeded"
    NOT_MODERATOR = "not_moderator"
    NOT_FOUND = "not_found"
    UNAVAILABLE = "unavailable"
    NOT_CONFIGURED = "not_configured"  # the operator has not turned the feature on


@dataclass(frozen=True)
class Accepted:
    job_id: int
    position: int
    model: str
    size: str
    aspect_ratio: str
    estimate_usd: Decimal | None = None
    duplicate: bool = False
    # Set when the team's soft-threshold policy switched the model ("pro").
    downgraded_from: str | None = None
    # Budgets this request took past their alert line, for the moderators' channel.
    alerts: tuple[str, ...] = ()
    # Answered from the prompt cache: the result is already on its way, at $0.
    cached: bool = False
    # On the Batch lane (--batch, or --relax on a model without Flex): half price, within hours.
    relaxed: bool = False
    # The lane it runs on ("standard", "flex", "batch", "priority").
    lane: str = "standard"
    # Why it is not on the lane asked for ("lite has no Flex lane; it goes to the Batch lane").
    lane_note: str | None = None
    # The model asked for is retired and this was made with its replacement:
    # "legacy was retired on 2026-10-02; made with flash." Adapters show it.
    retired_note: str | None = None
    # Images sent with the prompt (an edit's own image included); the estimate prices each.
    input_images: int = 0

    @property
    def blend_note(self) -> str | None:
        return blend_note(self.input_images)


@dataclass(frozen=True)
class Refused:
    reason: RefusalReason
    detail: str
    # A budget refusal a moderator may approve: the adapter offers [Ask a moderator] with it.
    ask_token: str | None = None


@dataclass(frozen=True)
class NeedsConfirmation:
    """Ask first: adapters offer [Run] (resubmit with confirmed=True) and
    [Use Flash] (resubmit with model="flash", confirmed=True)."""

    detail: str
    estimate_usd: Decimal
    flash_estimate_usd: Decimal | None
    remaining_usd: Decimal | None  # the tightest budget's money left, if any budget applies
    request: ImagineRequest | EditRequest


Outcome = Accepted | NeedsConfirmation | Refused


# -- Store records: what the store's ports (bot/store/ports.py) take and give back --------


@dataclass(frozen=True)
class NewDelivery:
    key: str
    kind: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class Submitted:
    job_id: int
    position: int
    duplicate: bool
    cached: bool = False


@dataclass(frozen=True)
class EarlierResult:
    """A team's finished image for a cache key, for Store.stale_result."""

    job_id: int
    image: StoredImage
    result: dict[str, Any]
    finished_at: float


@dataclass(frozen=True)
class Batch:
    """Relaxed jobs sent together to the provider's Batch API.

    Its jobs are `running` with worker_id `batch_worker(id)` and no lease
    expiry: they are finished through complete()/fail() like any job, by
    whichever process polls the batch.
    """

    id: int
    model_id: str
    state: str  # creating | submitted | closed
    remote_name: str | None
    created_at: float
    job_ids: tuple[int, ...]  # in request order (set by batch_sending): the provider answers in it
    jobs: tuple[Job, ...]  # those still waiting on the batch

    def waiting(self) -> dict[int, Job]:
        return {job.id: job for job in self.jobs}

    @property
    def worker_id(self) -> str:
        return batch_worker(self.id)


def batch_worker(batch_id: int) -> str:
    return f"batch:{batch_id}"


# -- the gallery: a team's result images and deleting one ----------------------------


@dataclass(frozen=True)
class GalleryImage:
    """A result image as the gallery lists it: what was asked, by whom, and what its job was
    charged (the ledger's settlements, micro-dollars). A deleted image kept for its thread's
    edits (a tombstone) has `deleted_at` set and no bytes."""

    id: int
    job_id: int
    parent_image_id: int | None
    team: str
    channel: str
    user: str
    platform: str
    kind: str  # imagine | edit
    prompt: str  # an edit's instruction
    model: str
    size: str
    aspect_ratio: str
    lane: Lane
    mime: str
    width: int
    height: int
    created_at: float
    cost_micros: int
    deleted_at: float | None = None
    input_images: int = 0  # images its job sent the model (GenerationSpec.input_images)

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def blend_note(self) -> str | None:
        return blend_note(self.input_images)


@dataclass(frozen=True)
class DeletedImage:
    """What deleting an image did, in one transaction."""

    image_id: int
    tombstone: bool  # edits name it as their parent: their lineage shows it, marked deleted
    blob_deleted: bool  # False when another image holds the same bytes
    threads_unlinked: int  # chat threads that pointed at it (a reply there no longer edits it)
    cache_entries: int  # jobs whose prompt-cache entry served it (they no longer match)


@dataclass(frozen=True)
class StorageSizes:
    """How big the store is, for doctor and /metrics (bot/retention.py)."""

    database_bytes: int  # SQLite: its pages; PostgreSQL: pg_database_size
    blob_bytes: int  # image bytes, each distinct content once
    blobs: int
    detail: str  # how the database measured itself (pages, or the database's name)
    tables: dict[str, int]  # PostgreSQL: this store's biggest tables with their indexes; SQLite: none
