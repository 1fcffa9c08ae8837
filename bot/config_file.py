"""The operator's IMAGINE_CONFIG file, checked whole when it is read.

Every table the file may hold is a model here, so a wrong shape stops start-up
with one line naming the file, the key, what was found and what was expected
(`bootstrap` turns it into exit 4), instead of an internal error later, or a
value read wrongly without a word (`sizes = "1K"` taken as the sizes "1" and "K").

Only the shape is checked here. The runtime objects (the Catalog, the
PolicyBook) are still built from the file's own dict, so their merge rules
(an override replaces one figure, a team's table one default) are untouched.
"""

from __future__ import annotations

import datetime
import functools
import tomllib
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from bot.config_errors import describe
from bot.retention import RetentionSettings
from policies.config import Access, ChannelRule, RoleRule, TeamPolicy

Lane = Literal["standard", "batch", "flex", "priority"]


@functools.cache
def known_sizes() -> tuple[str, ...]:
    """Every size a model of the shipped catalog makes, smallest first (as the API spells them)."""
    shipped = tomllib.loads(resources.files("bot").joinpath("catalog.toml").read_text("utf-8"))
    sizes = {size for model in shipped.get("models", {}).values() for size in model.get("sizes", [])}
    return tuple(sorted(sizes, key=lambda size: int(size.removesuffix("K")) * (1000 if size.endswith("K") else 1)))


def _size(value: str, *, exact: bool) -> str:
    # The catalog writes "2k" as "2K", so a model's sizes may be in any case; a channel's
    # are compared as written, so there "2k" would silently never match.
    if (value if exact else value.strip().upper()) not in known_sizes():
        raise PydanticCustomError("expected", "one of {sizes}", {"sizes": ", ".join(known_sizes())})
    return value


def _date_or_iso_text(value: Any) -> Any:
    # TOML has dates (shutdown = 2026-10-02); a quoted date is read too, but a number is
    # not a date (pydantic would read 5 as seconds after 1970).
    if isinstance(value, datetime.date | str):
        return value
    raise PydanticCustomError("date_type", "a date")


Size = Annotated[StrictStr, AfterValidator(functools.partial(_size, exact=False))]
ChannelSize = Annotated[StrictStr, AfterValidator(functools.partial(_size, exact=True))]
Price = Annotated[Decimal, Field(ge=0)]  # USD; a negative price would pay the user
Count = Annotated[StrictInt, Field(ge=0)]
Positive = Annotated[StrictInt, Field(ge=1)]
Day = Annotated[datetime.date, BeforeValidator(_date_or_iso_text)]


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Defaults(_Table):
    model: StrictStr | None = None
    aspect_ratio: StrictStr | None = None


class ModelTable(_Table):
    """`[models.ALIAS]`: every key optional, since it is merged over the shipped model."""

    id: StrictStr | None = None
    aliases: list[StrictStr] | None = None
    aspect_ratios: list[StrictStr] | None = None
    sizes: list[Size] | None = Field(default=None, min_length=1)
    default_size: Size | None = None
    send_image_size: StrictBool | None = None
    max_reference_images: Positive | None = None
    output_token_limit: Positive | None = None
    inline_image_bytes: dict[str, Positive] | None = None
    inline_request_bytes: dict[str, Positive] | None = None
    lanes: list[Lane] | None = None
    thinking_levels: list[StrictStr] | None = None
    shutdown: Day | None = None
    replacement: StrictStr | None = None
    price: dict[Size, Price] | None = None
    image_tokens: dict[Size, Count] | None = None
    # Bytes one answer of each size may hold in a worker's memory (IMAGINE_MEMORY_MB reservations).
    memory_bytes: dict[Size, Positive] | None = None
    image_output_per_million: Price | None = None
    input_per_million: Price | None = None
    text_output_per_million: Price | None = None
    text_allowance_tokens: Count | None = None
    batch_discount: Annotated[Decimal, Field(ge=0, le=1)] | None = None
    # Priority costs more than Standard, never less (Google: "75% to 100% more").
    priority_multiplier: Annotated[Decimal, Field(ge=1)] | None = None


# A gateway's `price` holds per-model tables ({ "1K" = 0.07 } each) or, flat, one price per size.
# The tags are dropped from an error's key path (config_errors.UNION_TAGS).
GatewayPrice = Annotated[
    Annotated[dict[Size, Price], Tag("<per model>")] | Annotated[Price, Tag("<flat>")],
    Discriminator(lambda value: "<per model>" if isinstance(value, dict) else "<flat>"),
]


class GatewayTable(_Table):
    bills_failed_calls: StrictBool | None = None
    models: dict[str, StrictStr] | None = None
    sizes: dict[Size, StrictStr] | None = None
    price: dict[str, GatewayPrice] | None = None


class RouteTable(_Table):
    requests_per_minute: Positive | None = None
    max_concurrency: Positive | None = None
    models: dict[str, StrictStr] | None = None  # the older spelling of [gateways.NAME] models


class ChannelTable(ChannelRule):
    models: list[StrictStr] | None = None
    sizes: list[ChannelSize] | None = None


class RoleTable(RoleRule):
    """`[teams."T".roles."ROLE_ID"]`: whole numbers and known sizes, as a channel's."""

    user_daily_usd: Price | None = Field(default=None, le=1_000_000)
    user_images_per_day: Count | None = None
    models: list[StrictStr] | None = None
    sizes: list[ChannelSize] | None = None


class TeamTable(TeamPolicy):
    """`[policy]` or `[teams."T"]`: the policy's own checks, plus known channel and role sizes."""

    # Only ever validated, never read as a TeamPolicy, so the narrower tables are safe.
    channels: dict[str, ChannelTable] = Field(default_factory=dict)  # type: ignore[assignment]
    roles: dict[str, RoleTable] = Field(default_factory=dict)  # type: ignore[assignment]


class ConfigFile(_Table):
    version: StrictStr | None = None
    defaults: Defaults | None = None
    models: dict[str, ModelTable] | None = None
    gateways: dict[str, GatewayTable] | None = None
    routes: dict[str, RouteTable] | None = None
    policy: TeamTable | None = None
    teams: dict[str, TeamTable] | None = None
    access: Access | None = None
    # Days to keep each kind of data (the pruner's own settings model).
    retention: RetentionSettings | None = None


class ConfigFileError(ValueError):
    """The file cannot be used; the message is the one line to show the operator."""


def check_config(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    """`data`, read from `path`, when its shape is right; else ConfigFileError."""
    try:
        ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigFileError(f"IMAGINE_CONFIG {path}: {describe(exc, ConfigFile)}") from None
    return data


def read_config(path: Path | None) -> dict[str, Any]:
    """The operator's IMAGINE_CONFIG file as a dict ({} when none is set), its shape checked."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigFileError(f"cannot read IMAGINE_CONFIG {path}: {exc}") from exc
    return check_config(path, data)
