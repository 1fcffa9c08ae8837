"""The catalog states Google's figures per model and their retirement dates, and the status
a retired model's request gets says so (requests made with the replacement: tests/integration)."""

from __future__ import annotations

import datetime
from decimal import Decimal

import pytest

from adapters.discord import render as discord_render
from adapters.discord.imagine_command import RATIOS
from adapters.slack import render as slack_render
from bot.catalog import lifecycle_warnings, load_catalog
from bot.types import Accepted

GOOGLE_RATIOS = {"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9", "1:4", "4:1", "1:8", "8:1"}


def test_lite_makes_1k_only_in_the_14_ratios_of_its_model_page():
    lite = load_catalog().resolve("lite")
    assert lite.sizes == ("1K",) and lite.default_size == "1K"
    assert set(lite.aspect_ratios) == GOOGLE_RATIOS and len(lite.aspect_ratios) == 14
    assert lite.output_token_limit == 4096
    assert lite.thinking_levels == ("minimal", "high")


def test_no_model_offers_9_21_and_discord_offers_exactly_the_catalogs_ratios():
    catalog = load_catalog()
    offered = {r for info in catalog.models.values() for r in info.aspect_ratios}
    assert "9:21" not in offered and offered == GOOGLE_RATIOS
    assert set(RATIOS) == offered and len(RATIOS) == len(set(RATIOS))


def test_the_preview_ids_are_aliases_of_the_ga_ids():
    catalog = load_catalog()
    assert catalog.resolve("gemini-3.1-flash-image-preview").alias == "flash"
    assert catalog.resolve("gemini-3-pro-image-preview").alias == "pro"


def test_per_model_limits_for_each_route_and_lane():
    catalog = load_catalog()
    pro, flash, lite, legacy = (catalog.resolve(a) for a in ("pro", "flash", "lite", "legacy"))
    assert [m.max_reference_images for m in (pro, flash, lite, legacy)] == [14, 14, 14, 3]
    assert [m.output_token_limit for m in (pro, flash, lite, legacy)] == [32768, 32768, 4096, 32768]
    # Vertex takes 7 MB per inline image; the Developer API's limit is the whole payload.
    assert {m.inline_image_bytes["vertex"] for m in (pro, flash, lite, legacy)} == {7_000_000}
    assert {m.inline_request_bytes["gemini"] for m in (pro, flash, lite, legacy)} == {100_000_000}
    assert pro.lanes == ("standard", "batch", "flex", "priority") and lite.lanes == ("standard", "batch")


def test_a_catalog_naming_an_unknown_replacement_is_a_clear_error(tmp_path):
    config = tmp_path / "imagine.toml"
    config.write_text('[models.pro]\nshutdown = 2027-01-01\nreplacement = "turbo"\n')
    with pytest.raises(ValueError, match="replacement 'turbo'"):
        load_catalog(config)


def test_legacy_is_retired_on_googles_date_with_flash_as_its_replacement():
    legacy = load_catalog().resolve("legacy")
    assert (legacy.shutdown, legacy.replacement) == (datetime.date(2026, 10, 2), "flash")
    assert not legacy.retired(datetime.date(2026, 10, 1)) and legacy.retired(datetime.date(2026, 10, 2))


def test_lifecycle_warnings_start_30_days_ahead_and_stay_after_the_shutdown():
    catalog = load_catalog()
    assert lifecycle_warnings(catalog, datetime.date(2026, 9, 1)) == []
    assert lifecycle_warnings(catalog, datetime.date(2026, 9, 2)) == [
        "legacy (gemini-2.5-flash-image) shuts down on 2026-10-02, in 30 days; "
        "from then requests for it will be made with flash."
    ]
    assert lifecycle_warnings(catalog, datetime.date(2026, 11, 30)) == [
        "legacy (gemini-2.5-flash-image) was retired on 2026-10-02; requests for it are made with flash."
    ]


def test_a_retired_model_without_a_replacement_is_refused_by_name(tmp_path):
    config = tmp_path / "imagine.toml"
    config.write_text("[models.lite]\nshutdown = 2026-11-01\n")
    catalog = load_catalog(config)
    with pytest.raises(Exception, match="lite was retired on 2026-11-01 and has no replacement"):
        catalog.validate_on(datetime.date(2026, 11, 30), "lite", None, None)
    assert "requests for it are refused" in lifecycle_warnings(catalog, datetime.date(2026, 11, 30))[0]


def accepted_note() -> Accepted:
    return Accepted(
        job_id=1,
        position=1,
        model="flash",
        size="1K",
        aspect_ratio="1:1",
        estimate_usd=Decimal("0.0700"),
        retired_note="legacy was retired on 2026-10-02; made with flash.",
    )


def test_slack_and_discord_status_say_the_model_was_retired():
    slack, discord = slack_render.queued(accepted_note()), discord_render.queued(accepted_note())
    assert slack.endswith("\n:information_source: legacy was retired on 2026-10-02; made with flash.")
    assert discord.endswith("\nℹ️ legacy was retired on 2026-10-02; made with flash.")
    assert "flash" in slack.splitlines()[0] and "flash" in discord.splitlines()[0]
    plain = Accepted(job_id=1, position=1, model="flash", size="1K", aspect_ratio="1:1")
    assert "retired" not in slack_render.queued(plain) and "retired" not in discord_render.queued(plain)
