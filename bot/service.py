"""The core API adapters call: submit, edit, status, cancel.

Expected failures come back as `Refused` outcomes with a sentence fit for
the user; adapters render them in their own words and never see an
exception for bad input.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from bot import images, pricing
from bot.catalog import Catalog
from bot.store.base import Store, StoreUnavailable
from bot.types import (
    Accepted, CheckedImage, EditRequest, GenerationSpec, ImagineRequest, InputImage,
    InvalidRequest, Job, Lane, NewJob, Outcome, RefusalReason, Refused,
)
from policies.moderation import check_prompt

log = logging.getLogger(__name__)
STORE_DOWN = "I can't reach my database right now, so nothing was queued. Please try again in a minute."
MAX_INPUT_IMAGES = 6


class ImagineService:
    def __init__(
        self, store: Store, catalog: Catalog, *, max_attempts: int = 3,
        batch_lane: bool = False, on_submit: Callable[[], None] | None = None,
    ) -> None:
        self._store = store
        self._catalog = catalog
        self._max_attempts = max_attempts
        self._batch_lane = batch_lane
        self._on_submit = on_submit or (lambda: None)

    async def submit(self, req: ImagineRequest) -> Outcome:
        return await self._enqueue(
            req, kind="imagine", prompt=req.prompt, model=req.model, aspect_ratio=req.aspect_ratio,
            size=req.size, parent_image_id=None,
        )

    async def edit(self, req: EditRequest) -> Outcome:
        """Edit a finished image of the same team; its settings carry over unless overridden."""
        try:
            parent = await self._store.get_image(req.parent_image_id)
            parent_job = await self._store.get_job(parent.job_id) if parent and parent.job_id else None
        except StoreUnavailable:
            log.exception("edit: store unavailable")
            return Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)
        if parent is None or parent.role != "output" or parent_job is None or parent_job.team != req.team:
            return Refused(RefusalReason.NOT_FOUND, "I can't find that image to edit.")
        return await self._enqueue(
            req, kind="edit", prompt=req.instruction,
            model=req.model or parent_job.spec.model_alias,
            aspect_ratio=req.aspect_ratio or parent_job.spec.aspect_ratio,
            size=req.size or parent_job.spec.size,
            parent_image_id=parent.id,
        )

    async def _enqueue(
        self, req: ImagineRequest | EditRequest, *, kind: str, prompt: str, model: str | None,
        aspect_ratio: str | None, size: str | None, parent_image_id: int | None,
    ) -> Outcome:
        try:
            spec, inputs = self._spec(req, prompt, model, aspect_ratio, size, parent_image_id)
            images_sent = len(inputs) + (parent_image_id is not None)
            estimate = pricing.estimate(
                self._catalog.resolve(spec.model_alias), spec.size, spec.lane, images_sent
            )
        except InvalidRequest as exc:
            return Refused(RefusalReason.INVALID_REQUEST, str(exc))
        job = NewJob(
            team=req.team, channel=req.channel, user=req.user, platform=req.platform, kind=kind,
            spec=spec, max_attempts=self._max_attempts, delivery=dict(req.delivery),
            idempotency_key=req.idempotency_key,
        )
        try:
            submitted = await self._store.submit(job, inputs)
        except StoreUnavailable:
            log.exception("submit: store unavailable")
            return Refused(RefusalReason.UNAVAILABLE, STORE_DOWN)
        if not submitted.duplicate:
            self._on_submit()
        return Accepted(
            job_id=submitted.job_id, position=submitted.position, model=spec.model_alias,
            size=spec.size, aspect_ratio=spec.aspect_ratio, estimate_usd=estimate,
            duplicate=submitted.duplicate,
        )

    def _spec(
        self, req: ImagineRequest | EditRequest, prompt: str, model: str | None,
        aspect_ratio: str | None, size: str | None, parent_image_id: int | None,
    ) -> tuple[GenerationSpec, list[CheckedImage]]:
        text = check_prompt(prompt)
        info, ratio, size = self._catalog.validate(model, aspect_ratio, size)
        if req.relax and not self._batch_lane:
            raise InvalidRequest("The relaxed (--relax, Batch) lane is not enabled on this bot yet.")
        # The parent image (for edits) is read by the worker from its own row.
        inputs = check_images(req.images)
        if len(inputs) + (parent_image_id is not None) > MAX_INPUT_IMAGES:
            raise InvalidRequest(f"At most {MAX_INPUT_IMAGES} images can go with one request.")
        spec = GenerationSpec(
            prompt=text, model_alias=info.alias, model_id=info.model_id, aspect_ratio=ratio,
            size=size, lane=Lane.BATCH if req.relax else Lane.STANDARD,
            send_image_size=info.send_image_size, parent_image_id=parent_image_id,
        )
        return spec, inputs

    async def status(self, job_id: int) -> tuple[Job | None, int | None]:
        """The job and, while it is queued, its position (1 = next)."""
        job = await self._store.get_job(job_id)
        return job, (await self._store.position(job_id) if job else None)

    async def cancel(self, job_id: int) -> bool:
        return await self._store.cancel(job_id)


def check_images(attached: Sequence[InputImage]) -> list[CheckedImage]:
    """Every attachment must really be an image; the first that is not refuses the request."""
    return [images.check(img.data) for img in attached]
