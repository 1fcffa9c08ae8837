"""The Provider port: one image generation call, or a typed ProviderError."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.providers.errors import ProviderError
from bot.types import GenerationResult, GenerationSpec, InputImage


class ImageProvider(Protocol):
    name: str

    async def generate(self, spec: GenerationSpec, inputs: Sequence[InputImage]) -> GenerationResult:
        """Render one image. Raises a `bot.providers.errors.ProviderError` subclass."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class BatchItem:
    spec: GenerationSpec
    inputs: Sequence[InputImage]


@dataclass(frozen=True)
class BatchStatus:
    state: str  # pending | running | succeeded | failed | cancelled | expired | lost (gone at the provider)
    # Once succeeded: one outcome per request, in request order.
    answers: tuple[GenerationResult | ProviderError, ...] = ()

    @property
    def finished(self) -> bool:
        return self.state not in ("pending", "running")


class BatchProvider(Protocol):
    """A provider's asynchronous Batch API: cheaper, answered within hours."""

    async def submit_batch(self, model_id: str, items: Sequence[BatchItem], display_name: str) -> str:
        """Send the requests as one batch; returns the provider's name for it."""
        ...

    async def find_batch(self, display_name: str) -> str | None:
        """The name of an existing batch with this display name (one we may have sent before a crash)."""
        ...

    async def cancel_batch(self, name: str) -> None: ...

    async def batch_status(self, name: str, model_id: str, requests: int) -> BatchStatus:
        """Where the batch is; once it succeeded, the outcome of each of its `requests`."""
        ...
