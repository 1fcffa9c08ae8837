"""The model catalog: aliases, capabilities and prices, loaded from TOML data.

`bot/catalog.toml` holds the defaults; the operator's IMAGINE_CONFIG file is
merged over it table by table, so overriding one price leaves the rest alone.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

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
    image_output_per_million: Decimal | None = None
    input_per_million: Decimal | None = None
    text_output_per_million: Decimal | None = None
    # Text and thinking tokens the hold keeps room for beside the image.
    text_allowance_tokens: int = 0
    batch_discount: Decimal = Decimal("0.5")


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

    def validate(
        self, model: str | None, aspect_ratio: str | None, size: str | None
    ) -> tuple[ModelInfo, str, str]:
        """Resolve a model and check the aspect ratio and size it is asked for.

        Returns (model, aspect_ratio, size) with defaults filled in and the
        size written as the API wants it (uppercase K).
        """
        info = self.resolve(model)
        ratio = (aspect_ratio or self.default_aspect_ratio).strip()
        if ratio not in info.aspect_ratios:
            raise InvalidRequest(
                f"{info.alias} does not do aspect ratio '{ratio}'. "
                f"It takes: {', '.join(info.aspect_ratios)}."
            )
        wanted_size = normalize_size(size) if size else info.default_size
        if wanted_size not in info.sizes:
            raise InvalidRequest(
                f"{info.alias} does not do size '{size}'. It takes: {', '.join(info.sizes)}."
            )
        return info, ratio, wanted_size


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
            image_output_per_million=_optional_money(raw, "image_output_per_million"),
            input_per_million=_optional_money(raw, "input_per_million"),
            text_output_per_million=_optional_money(raw, "text_output_per_million"),
            text_allowance_tokens=int(raw.get("text_allowance_tokens", 0)),
            batch_discount=_money(raw.get("batch_discount", "0.5")),
        )
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
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
        raise ValueError(f"[gateways.{name}] price mixes per-model tables ({', '.join(per_model)}) with sizes "
                         f"({', '.join(flat)}): give each model its own, e.g. "
                         f"[gateways.{name}.price.{next(iter(per_model))}] \"1K\" = 0.067")
    tables = per_model or ({ANY_MODEL: flat} if flat else {})
    return {alias: {normalize_size(k): _money(v) for k, v in table.items()} for alias, table in tables.items()}


def read_config(path: Path | None) -> dict[str, Any]:
    """The operator's IMAGINE_CONFIG file as a dict ({} when none is set)."""
    if path is None:
        return {}
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"cannot read IMAGINE_CONFIG {path}: {exc}") from exc


def load_catalog(override_path: Path | None = None) -> Catalog:
    data = tomllib.loads(resources.files("bot").joinpath("catalog.toml").read_text("utf-8"))
    data = _merge(data, read_config(override_path))
    models = {alias: _model(alias, raw) for alias, raw in data.get("models", {}).items()}
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
