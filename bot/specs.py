"""How a request becomes a GenerationSpec: its model (a retired one's replacement),
ratio, size and lane, the fallbacks that may serve it, and the checks a spec must
pass before it is priced (attachments, channel rules, what a batch can take).
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from bot import images
from bot.catalog import Catalog, ModelInfo, retired_note
from bot.memory_budget import check_fits_memory
from bot.money import pricing
from bot.store.batch_sizing import BATCH_INLINE_BYTES, inline_request_bytes
from bot.types import CheckedImage, EditRequest, GenerationSpec, ImagineRequest, InputImage, InvalidRequest, Lane
from policies.config import PolicyBook
from policies.routing import check_channel

# By lane value (a Lane is its value as a key too): its name, and the flag that asks for it.
LANE_NAMES = {"standard": "Standard", "flex": "Flex", "batch": "Batch", "priority": "Priority"}
LANE_FLAGS = {"standard": "no flag", "flex": "--relax", "batch": "--batch", "priority": "--priority"}
PRIORITY_NOT_ENABLED = (
    "The Priority lane (--priority) is not enabled for this team: it costs about {extra} more "
    "than Standard. The bot's operator can enable it with `priority = true` under "
    '[teams."{team}"] in IMAGINE_CONFIG. Leave out --priority to run it now. '
    "Nothing was charged."
)


@dataclass(frozen=True)
class RequestChoices:
    """What a form may offer a team for /imagine's options: today's models and, from every
    one of them, the aspect ratios and sizes, and the lanes this team and this bot's setup
    allow. A combination one model lacks is still refused by `SpecBuilder.spec`, in words."""

    default_model: str
    models: tuple[str, ...]
    aspect_ratios: tuple[str, ...]
    sizes: tuple[str, ...]
    lanes: tuple[str, ...]


class SpecBuilder:
    """Resolves requests against the catalog, the team's policy and what this bot is set up for."""

    def __init__(
        self,
        catalog: Catalog,
        policies: PolicyBook,
        *,
        batch_lane: bool,
        service_tiers: bool,
        gateway_routes: tuple[str, ...],
        clock: Callable[[], float],
        memory_limit: int | None = None,
    ) -> None:
        self._memory_limit = memory_limit  # IMAGINE_MEMORY_MB in bytes (None: not checked here)
        self._catalog = catalog
        self._policies = policies
        self._batch_lane = batch_lane
        # Flex and Priority (generateContent's service_tier) need the Developer API, as Batch does.
        self._service_tiers = service_tiers
        self._gateway_routes = gateway_routes
        self._clock = clock

    def spec(
        self,
        req: ImagineRequest | EditRequest,
        text: str,
        model: str | None,
        aspect_ratio: str | None,
        size: str | None,
        parent_image_id: int | None,
        attachments: int,
    ) -> GenerationSpec:
        # A retired model's request (an edit of its image too) is made with its replacement.
        info, ratio, size = self._resolve(model, aspect_ratio, size)
        lane = self._lane(req, info)
        check_image_count(info, attachments, editing=parent_image_id is not None)
        # The other lanes are Gemini's alone: no fallbacks, and priced at their own rate.
        fallbacks = () if lane is not Lane.STANDARD else self._usable_fallbacks(req, info.alias, ratio, size)
        # Hedging needs a route to hedge with: the next in the chain.
        hedge_after_s = self._policies.for_team(req.team).hedge_after_s if fallbacks else None
        spec = GenerationSpec(
            prompt=text,
            model_alias=info.alias,
            model_id=info.model_id,
            aspect_ratio=ratio,
            size=size,
            lane=lane,
            send_image_size=info.send_image_size,
            parent_image_id=parent_image_id,
            fallbacks=fallbacks,
            hedge_after_s=hedge_after_s,
            input_images=images_sent(attachments, editing=parent_image_id is not None),
        )
        check_fits_memory(self._catalog, spec, self._memory_limit)
        return spec

    def _lane(self, req: ImagineRequest | EditRequest, info: ModelInfo) -> Lane:
        """The lane asked for, if this team, this model and this bot's setup allow it. A relaxed
        request on a model without Flex goes to the Batch lane at the same half price
        (`lane_note` says so); anything else a model or the bot lacks is refused, never sent
        at Standard's full price."""
        asked = requested_lane(req)
        if asked is Lane.PRIORITY and not self._policies.for_team(req.team).priority:
            raise InvalidRequest(
                PRIORITY_NOT_ENABLED.format(extra=f"{info.priority_multiplier - 1:.0%}", team=req.team)
            )
        if asked is Lane.FLEX and "flex" not in info.lanes and "batch" in info.lanes and self._batch_lane:
            return Lane.BATCH
        if asked.value not in info.lanes:
            takes = ", ".join(f"{LANE_NAMES[lane]} ({LANE_FLAGS[lane]})" for lane in info.lanes)
            raise InvalidRequest(
                f"{info.alias} has no {LANE_NAMES[asked]} lane ({LANE_FLAGS[asked]}). "
                f"Its lanes: {takes}. Nothing was charged."
            )
        if asked is Lane.BATCH and not self._batch_lane:
            raise InvalidRequest(
                "The Batch lane (--batch) needs Google's Batch API, which this bot is not "
                "set up for (it needs a Gemini API key). Leave out --batch."
            )
        if asked in (Lane.FLEX, Lane.PRIORITY) and not self._service_tiers:
            raise InvalidRequest(
                f"The {LANE_NAMES[asked]} lane ({LANE_FLAGS[asked]}) needs the Gemini Developer "
                f"API (a Gemini API key), which this bot is not set up for. Leave out "
                f"{LANE_FLAGS[asked]}."
            )
        return asked

    def choices(self, team: str) -> RequestChoices:
        """The options a form offers `team` (the checks `_lane` makes, as a list)."""
        live = [self._catalog.models[alias] for alias in self._catalog.live_aliases(self._today())]
        offered = {lane for info in live for lane in info.lanes}
        usable = {
            Lane.STANDARD: True,
            Lane.FLEX: self._service_tiers,
            Lane.BATCH: self._batch_lane,
            Lane.PRIORITY: self._service_tiers and self._policies.for_team(team).priority,
        }
        return RequestChoices(
            default_model=self._catalog.default_model,
            models=tuple(info.alias for info in live),
            aspect_ratios=_union(info.aspect_ratios for info in live),
            sizes=_union(info.sizes for info in live),
            lanes=tuple(lane.value for lane in Lane if usable[lane] and lane.value in offered),
        )

    def most_reference_images(self) -> int:
        """The largest `max_reference_images` among today's models."""
        live = self._catalog.live_aliases(self._today())
        return max((self._catalog.models[alias].max_reference_images for alias in live), default=1)

    def lane_note(self, req: ImagineRequest | EditRequest, spec: GenerationSpec) -> str | None:
        if requested_lane(req) is Lane.FLEX and spec.lane is Lane.BATCH:
            return (
                f"{spec.model_alias} has no Flex lane, so this relaxed request goes to the Batch lane "
                "at the same half price; results within hours."
            )
        return None

    def model_today(self, model: str | None) -> ModelInfo:
        """The model a request for `model` is made with today (a retired one's replacement)."""
        return self._catalog.current(model, self._today())[0]

    def _resolve(self, model: str | None, aspect_ratio: str | None, size: str | None) -> tuple[ModelInfo, str, str]:
        resolved = self._catalog.validate_on(self._today(), model, aspect_ratio, size)
        return resolved.model, resolved.aspect_ratio, resolved.size

    def _today(self) -> datetime.date:
        return datetime.datetime.fromtimestamp(self._clock(), datetime.UTC).date()

    def retired_note(self, model: str | None, made_with: str) -> str | None:
        """The reply's note when `model` is retired ("legacy was retired on ...; made with flash.")."""
        _, retired = self._catalog.current(model, self._today())
        return retired_note(retired, made_with) if retired else None

    def _usable_fallbacks(
        self, req: ImagineRequest | EditRequest, alias: str, ratio: str, size: str
    ) -> tuple[str, ...]:
        """The team's fallbacks for `alias` that may serve this very request:
        allowed in this channel, able to make this ratio and size, and priced.
        A fallback obeys every rule the model asked for obeys."""
        policy = self._policies.for_team(req.team)
        usable = []
        for fallback in policy.fallback.get(alias, ()):
            route, _, fallback_alias = fallback.rpartition(":")
            try:
                info, _, _ = self._catalog.validate(fallback_alias, ratio, size)
                if info.retired(self._today()):
                    continue  # Google answers a retired model with a 404
                check_channel(policy, req.channel, info.alias, size)
                if route:
                    gateway = self._catalog.gateways.get(route)
                    # A route this bot does not run can't serve it (and must not inflate the hold).
                    if route not in self._gateway_routes or gateway is None or gateway.price(info.alias, size) is None:
                        continue
                else:
                    pricing.image_price(info, size, Lane.STANDARD)
            except InvalidRequest:
                continue  # NotAllowedHere and Unpriced are InvalidRequests too
            usable.append(fallback)
        return tuple(usable)


def _union(groups: Iterable[Sequence[str]]) -> tuple[str, ...]:
    """Every value of `groups`, once each, in the order first seen."""
    return tuple(dict.fromkeys(value for group in groups for value in group))


def cache_key(spec: GenerationSpec, inputs: list[CheckedImage], parent_sha256: str | None) -> str:
    """Requests that would make the same image: same model, size, ratio, prompt and pictures."""
    parts = [
        spec.model_id,
        spec.size,
        spec.aspect_ratio,
        spec.lane.value,
        spec.prompt,
        parent_sha256 or "",
        *(image.sha256 for image in inputs),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def check_fits_a_batch(spec: GenerationSpec, inputs: Sequence[CheckedImage], parent_bytes: int) -> None:
    """A relaxed request must fit in a batch Google takes inline (about 20 MB, images
    base64-encoded): one that never could is refused now, not failed hours later."""
    images = len(inputs) + (spec.parent_image_id is not None)
    size = inline_request_bytes(sum(len(i.data) for i in inputs) + parent_bytes, images, spec.prompt)
    if size > BATCH_INLINE_BYTES:
        raise InvalidRequest(
            f"This request is too big for the Batch lane: its images come to {size / 1_048_576:.1f} MB once "
            f"encoded, and a batch takes at most {BATCH_INLINE_BYTES / 1_048_576:.0f} MB. "
            f"Run it without --batch (or send smaller images)."
        )


def requested_lane(req: ImagineRequest | EditRequest) -> Lane:
    """The lane a request asks for: its `lane`, else Flex for `relax`, else Standard."""
    if req.lane:
        try:
            return Lane(req.lane.strip().lower())
        except ValueError:
            raise InvalidRequest(
                f"Unknown lane '{req.lane}'. Choose one of: {', '.join(lane.value for lane in Lane)}."
            ) from None
    return Lane.FLEX if req.relax else Lane.STANDARD


def check_image_count(info: ModelInfo, attachments: int, *, editing: bool) -> None:
    """At most the model's reference images with one request (the catalog's figure, from
    Google's model pages). The image being edited is read by the worker from its own row,
    and counts too."""
    sent = images_sent(attachments, editing=editing)
    if sent > info.max_reference_images:
        counted = ", counting the image being edited" if editing else ""
        raise InvalidRequest(
            f"{info.alias} takes up to {info.max_reference_images} images; you sent {sent}{counted}. Send fewer images."
        )


def images_sent(attachments: int, *, editing: bool) -> int:
    """The images a request sends the model: its attachments, and the image an edit edits."""
    return attachments + editing


def check_images(attached: Sequence[InputImage]) -> list[CheckedImage]:
    """Every attachment must really be an image; the first that is not refuses the request."""
    return [images.check_input(img.data) for img in attached]
