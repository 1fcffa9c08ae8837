"""The model catalog: aliases, capabilities and prices, loaded from TOML data.

`bot/catalog.toml` holds the defaults; the operator's IMAGINE_CONFIG file is
merged over it table by table, so overriding one price leaves the rest alone.
"""

from __future__ import annotations

import datetime
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, get_args

# read_config is imported from here too: the catalog merges the file it reads.
from bot.config_file import ConfigFileError, Lane
from bot.config_file import read_config as read_config
from bot.types import InvalidRequest


@dataclass(frozen=True)
class ModelInfo:
    alias: str
    model_id: str
    names: frozenset[str]
    aspect_ratios: tuple[str, ...]
    sizes: tuple[str, ...]
    default_size: str
    send_image_size: bool
    price: dict[str, Decimal] = field(default_factory=dict)
    image_tokens: dict[str, int] = field(default_factory=dict)
    # Per size: the bytes one answer can hold in memory at once (its largest PNG, base64 and
    # decode included); what a job reserves of IMAGINE_MEMORY_MB (bot.memory_budget).
    memory_bytes: dict[str, int] = field(default_factory=dict)
    image_output_per_million: Decimal | None = None
    input_per_million: Decimal | None = None
    text_output_per_million: Decimal | None = None
    # Text and thinking tokens the hold keeps room for beside the image.
    text_allowance_tokens: int = 0
    batch_discount: Decimal = Decimal("0.5")
    # What the Priority lane costs against Standard (Google: "75% to 100% more").
    priority_multiplier: Decimal = Decimal("1.8")
    # Reference images one request may carry (attachments plus an edit's parent).
    max_reference_images: int = 14
    # Largest output (image, text and thinking tokens) one answer may have.
    output_token_limit: int | None = None
    # Per route ("gemini": the Developer API, "vertex"): the largest inline image,
    # and the largest inline payload of one request, in bytes.
    inline_image_bytes: dict[str, int] = field(default_factory=dict)
    inline_request_bytes: dict[str, int] = field(default_factory=dict)
    # Service tiers the model takes ("standard", "batch", "flex", "priority").
    lanes: tuple[str, ...] = ("standard", "batch")
    thinking_levels: tuple[str, ...] = ()
    # The day Google turns the model off, and the alias its requests go to from then.
    shutdown: datetime.date | None = None
    replacement: str | None = None

    def retired(self, today: datetime.date) -> bool:
        return self.shutdown is not None and today >= self.shutdown


@dataclass(frozen=True)
class Resolved:
    """A request's model, aspect ratio and size after defaults and retirements."""

    model: ModelInfo
    aspect_ratio: str
    size: str
    # The retired model that was asked for, when `model` is its replacement.
    retired: ModelInfo | None = None


def retired_note(retired: ModelInfo, made_with: str) -> str:
    """What a reply says when the model asked for is retired."""
    return f"{retired.alias} was retired on {retired.shutdown}; made with {made_with}."


@dataclass(frozen=True)
class GatewayInfo:
    """An OpenAI-compatible gateway: the models it serves under its own names,
    its own name for each size, and its per-image price for each model."""

    name: str
    bills_failed_calls: bool
    # model alias -> size -> USD; ANY_MODEL's table is for models without their own.
    prices: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)  # our alias -> the gateway's model name
    sizes: dict[str, str] = field(default_factory=dict)  # our size -> the gateway's, where they differ

    def table(self, alias: str) -> dict[str, Decimal]:
        """The model's own per-size prices here ({} when it has none)."""
        return self.prices.get(alias, self.prices.get(ANY_MODEL, {}))

    def price(self, alias: str, size: str) -> Decimal | None:
        """What one image of `alias` at `size` costs here (None: not priced)."""
        return self.table(alias).get(normalize_size(size))

    def size_name(self, size: str) -> str:
        return self.sizes.get(normalize_size(size), size)


# A gateway's flat `price = { "1K" = ... }` table: one price for every model it serves.
ANY_MODEL = "*"


@dataclass(frozen=True)
class Catalog:
    version: str
    default_model: str
    default_aspect_ratio: str
    models: dict[str, ModelInfo]
    gateways: dict[str, GatewayInfo] = field(default_factory=dict)

    def resolve(self, name: str | None) -> ModelInfo:
        """Find a model by alias, id or legacy name, case-insensitively."""
        wanted = (name or self.default_model).strip().lower()
        for info in self.models.values():
            if wanted in info.names:
                return info
        known = ", ".join(self.models)
        raise InvalidRequest(f"Unknown model '{name}'. Choose one of: {known}.")

    def validate(self, model: str | None, aspect_ratio: str | None, size: str | None) -> tuple[ModelInfo, str, str]:
        """Resolve a model and check the aspect ratio and size it is asked for.

        Returns (model, aspect_ratio, size) with defaults filled in and the
        size written as the API wants it (uppercase K).
        """
        info = self.resolve(model)
        ratio = (aspect_ratio or self.default_aspect_ratio).strip()
        if ratio not in info.aspect_ratios:
            raise InvalidRequest(
                f"{info.alias} does not do aspect ratio '{ratio}'. It takes: {', '.join(info.aspect_ratios)}."
            )
        wanted_size = normalize_size(size) if size else info.default_size
        if wanted_size not in info.sizes:
            raise InvalidRequest(f"{info.alias} does not do size '{size}'. It takes: {', '.join(info.sizes)}.")
        return info, ratio, wanted_size

    def current(self, name: str | None, today: datetime.date) -> tuple[ModelInfo, ModelInfo | None]:
        """The model a request for `name` is made with today: itself, or the
        replacement of a retired model (following a chain of retirements).
        Returns (model, the retired model asked for, or None)."""
        asked = info = self.resolve(name)
        seen = {info.alias}
        while info.retired(today):
            if info.replacement is None:
                raise InvalidRequest(
                    f"{asked.alias} was retired on {asked.shutdown} and has no replacement. "
                    f"Choose one of: {', '.join(self.live_aliases(today))}."
                )
            info = self.models[info.replacement]
            if info.alias in seen:
                raise InvalidRequest(
                    f"{asked.alias} was retired on {asked.shutdown} and its replacements "
                    f"are all retired. Choose one of: {', '.join(self.live_aliases(today))}."
                )
            seen.add(info.alias)
        return info, (asked if info is not asked else None)

    def live_aliases(self, today: datetime.date) -> list[str]:
        return [alias for alias, info in self.models.items() if not info.retired(today)]

    def validate_on(
        self, today: datetime.date, model: str | None, aspect_ratio: str | None, size: str | None
    ) -> Resolved:
        """`validate` for a request made today. A retired model's request is made
        with its replacement, at the replacement's price; the aspect ratio must be
        one the replacement takes. The size asked for (or the retired model's
        default) is kept when the replacement offers it; a size only the retired
        model offered becomes the replacement's default."""
        info, retired = self.current(model, today)
        if retired is None:
            return Resolved(*self.validate(info.alias, aspect_ratio, size))
        wanted = normalize_size(size) if size else retired.default_size
        if wanted not in info.sizes and wanted not in retired.sizes:
            raise InvalidRequest(
                f"{retired.alias} was retired on {retired.shutdown}; its replacement "
                f"{info.alias} does not do size '{size}'. It takes: {', '.join(info.sizes)}."
            )
        kept = wanted if wanted in info.sizes else info.default_size
        try:
            _, ratio, kept = self.validate(info.alias, aspect_ratio, kept)
        except InvalidRequest as exc:
            raise InvalidRequest(
                f"{retired.alias} was retired on {retired.shutdown}, so this is made with {info.alias}. {exc}"
            ) from None
        return Resolved(info, ratio, kept, retired)


def lifecycle_warnings(catalog: Catalog, today: datetime.date, within_days: int = 30) -> list[str]:
    """What `doctor` should say about model shutdowns: each model already retired
    (its requests are made with the replacement) or shutting down within `within_days`."""
    warnings = []
    for info in catalog.models.values():
        if info.shutdown is None:
            continue
        days = (info.shutdown - today).days
        if days <= 0:
            instead = (
                f"requests for it are made with {info.replacement}"
                if info.replacement
                else "it has no replacement, so requests for it are refused"
            )
            warnings.append(f"{info.alias} ({info.model_id}) was retired on {info.shutdown}; {instead}.")
        elif days <= within_days:
            instead = (
                f"requests for it will be made with {info.replacement}"
                if info.replacement
                else "it has no replacement, so requests for it will be refused"
            )
            warnings.append(
                f"{info.alias} ({info.model_id}) shuts down on {info.shutdown}, in {days} "
                f"day{'s' if days != 1 else ''}; from then {instead}."
            )
    return warnings


def normalize_size(size: str) -> str:
    # People type "2k"; the API only accepts "2K".
    return size.strip().upper()


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _money(value: Any) -> Decimal:
    # str() first: Decimal(0.134) would carry the float's binary error.
    return Decimal(str(value))


def _optional_money(raw: dict[str, Any], key: str) -> Decimal | None:
    return _money(raw[key]) if raw.get(key) is not None else None


LANES: tuple[str, ...] = get_args(Lane)


def _lane(name: str) -> str:
    if name not in LANES:
        raise ValueError(f"unknown lane {name!r} (lanes are {', '.join(LANES)})")
    return name


def _date(value: Any) -> datetime.date | None:
    # TOML has a date type (shutdown = 2026-10-02); a quoted date is read too.
    if value is None or isinstance(value, datetime.date):
        return value
    return datetime.date.fromisoformat(str(value))


def _check_replacements(models: dict[str, ModelInfo]) -> None:
    for info in models.values():
        if info.replacement is not None and info.replacement not in models:
            raise ValueError(
                f"model '{info.alias}' in the catalog names replacement "
                f"'{info.replacement}', which is not a model in the catalog"
            )
        if info.replacement == info.alias:
            raise ValueError(f"model '{info.alias}' in the catalog names itself as its replacement")


def _model(alias: str, raw: dict[str, Any]) -> ModelInfo:
    try:
        model_id = raw["id"]
        names = {alias, model_id, *raw.get("aliases", [])}
        return ModelInfo(
            alias=alias,
            model_id=model_id,
            names=frozenset(n.lower() for n in names),
            aspect_ratios=tuple(raw["aspect_ratios"]),
            sizes=tuple(normalize_size(s) for s in raw["sizes"]),
            default_size=normalize_size(raw.get("default_size", raw["sizes"][0])),
            send_image_size=bool(raw.get("send_image_size", True)),
            price={normalize_size(k): _money(v) for k, v in raw.get("price", {}).items()},
            image_tokens={normalize_size(k): int(v) for k, v in raw.get("image_tokens", {}).items()},
            memory_bytes={normalize_size(k): int(v) for k, v in raw.get("memory_bytes", {}).items()},
            image_output_per_million=_optional_money(raw, "image_output_per_million"),
            input_per_million=_optional_money(raw, "input_per_million"),
            text_output_per_million=_optional_money(raw, "text_output_per_million"),
            text_allowance_tokens=int(raw.get("text_allowance_tokens", 0)),
            batch_discount=_money(raw.get("batch_discount", "0.5")),
            priority_multiplier=_money(raw.get("priority_multiplier", "1.8")),
            max_reference_images=int(raw.get("max_reference_images", 14)),
            output_token_limit=int(raw["output_token_limit"]) if raw.get("output_token_limit") else None,
            inline_image_bytes={route: int(v) for route, v in raw.get("inline_image_bytes", {}).items()},
            inline_request_bytes={route: int(v) for route, v in raw.get("inline_request_bytes", {}).items()},
            lanes=tuple(_lane(lane) for lane in raw.get("lanes", ("standard", "batch"))),
            thinking_levels=tuple(raw.get("thinking_levels", ())),
            shutdown=_date(raw.get("shutdown")),
            replacement=raw.get("replacement"),
        )
    except KeyError as exc:
        raise ValueError(
            f"[models.{alias}] {exc.args[0]}: missing; a model not in the shipped catalog needs id, "
            "aspect_ratios and sizes"
        ) from exc
    except (TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"model '{alias}' in the catalog is malformed: {exc!r}") from exc


def _gateway(name: str, raw: dict[str, Any], route: dict[str, Any]) -> GatewayInfo:
    try:
        return GatewayInfo(
            name=name,
            bills_failed_calls=bool(raw.get("bills_failed_calls", False)),
            prices=_gateway_prices(name, raw.get("price", {})),
            # `[routes.NAME] models` (the older spelling) replaces the map as a whole.
            models={str(k): str(v) for k, v in (route.get("models") or raw.get("models") or {}).items()},
            sizes={normalize_size(k): str(v) for k, v in raw.get("sizes", {}).items()},
        )
    except (AttributeError, TypeError, ValueError, ArithmeticError) as exc:
        raise ValueError(f"gateway '{name}' in the catalog is malformed: {exc!r}") from exc


def _gateway_prices(name: str, raw: dict[str, Any]) -> dict[str, dict[str, Decimal]]:
    """`price.<alias> = { size = USD }` per model, or a flat `price = { size = USD }` for all of them."""
    per_model = {alias: table for alias, table in raw.items() if isinstance(table, dict)}
    flat = {size: value for size, value in raw.items() if not isinstance(value, dict)}
    if per_model and flat:
        # An override of one size in a per-model table would otherwise be silently ignored.
        raise ValueError(
            f"[gateways.{name}] price mixes per-model tables ({', '.join(per_model)}) with sizes "
            f"({', '.join(flat)}): give each model its own, e.g. "
            f'[gateways.{name}.price.{next(iter(per_model))}] "1K" = 0.067'
        )
    tables = per_model or ({ANY_MODEL: flat} if flat else {})
    return {alias: {normalize_size(k): _money(v) for k, v in table.items()} for alias, table in tables.items()}


def load_catalog(override_path: Path | None = None) -> Catalog:
    data = tomllib.loads(resources.files("bot").joinpath("catalog.toml").read_text("utf-8"))
    override = read_config(override_path)
    for name, gateway in override.get("gateways", {}).items():
        price = gateway.get("price") if isinstance(gateway, dict) else None
        if isinstance(price, dict) and price and not any(isinstance(v, dict) for v in price.values()):
            # An operator's flat table prices every model alike: it replaces the shipped
            # per-model tables (merging the two would mix them).
            data.get("gateways", {}).get(name, {}).pop("price", None)
    data = _merge(data, override)
    try:
        return _catalog(data)
    except ValueError as exc:
        # Only a merged catalog can be wrong this way (a new model without its sizes, a default
        # or replacement that is no model): the operator's file made it so, so name it.
        if override_path is None:
            raise
        raise ConfigFileError(f"IMAGINE_CONFIG {override_path}: {exc}") from exc


def _catalog(data: dict[str, Any]) -> Catalog:
    models = {alias: _model(alias, raw) for alias, raw in data.get("models", {}).items()}
    _check_replacements(models)
    defaults = data.get("defaults", {})
    default_model = defaults.get("model", "pro")
    if default_model not in models:
        raise ValueError(f"default model '{default_model}' is not in the catalog")
    routes = data.get("routes", {})
    gateways = {name: _gateway(name, raw, routes.get(name, {})) for name, raw in data.get("gateways", {}).items()}
    return Catalog(
        version=str(data.get("version", "unversioned")),
        default_model=default_model,
        default_aspect_ratio=defaults.get("aspect_ratio", "1:1"),
        models=models,
        gateways=gateways,
    )
