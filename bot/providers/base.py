"""The Provider port: one image generation call, or a typed ProviderError."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bot.types import GenerationResult, GenerationSpec, InputImage


class ImageProvider(Protocol):
    name: str

    async def generate(self, spec: GenerationSpec, inputs: Sequence[InputImage]) -> GenerationResult:
        """Render one image. Raises a `bot.providers.errors.ProviderError` subclass."""
        ...

    async def close(self) -> None: ...
