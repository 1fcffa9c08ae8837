from __future__ import annotations

from decimal import Decimal

import pytest

from bot.catalog import load_catalog
from bot.money.pricing import Unpriced, estimate, settle, tokens_cost
from bot.settings import Settings
from bot.types import InvalidRequest, Lane, Usage


def test_aliases_resolve_to_the_documented_model_ids():
    catalog = load_catalog()
    ids = {
        name: catalog.resolve(name).model_id
        for name in ("pro", "flash", "lite", "legacy", "gemini-3-pro-image-preview", "Gemini-3-Pro-Image")
    }
    assert ids == {
        "pro": "gemini-3-pro-image",
        "flash": "gemini-3.1-flash-image",
        "lite": "gemini-3.1-flash-lite-image",
        "legacy": "gemini-2.5-flash-image",
        "gemini-3-pro-image-preview": "gemini-3-pro-image",
        "Gemini-3-Pro-Image": "gemini-3-pro-image",
    }


def test_capabilities_follow_the_table():
    catalog = load_catalog()
    pro, flash = catalog.resolve("pro"), catalog.resolve("flash")
    assert set(flash.aspect_ratios) - set(pro.aspect_ratios) == {"1:4", "4:1", "1:8", "8:1"}
    assert pro.sizes == ("1K", "2K", "4K") and flash.sizes == ("512", "1K", "2K", "4K")
    with pytest.raises(InvalidRequest, match="It takes: 1K, 2K, 4K"):
        catalog.validate("pro", "1:1", "512")


def test_operator_override_changes_one_figure_and_keeps_the_rest(tmp_path):
    config = tmp_path / "imagine.toml"
    config.write_text('[models.pro.price]\n"4K" = 0.26\n[models.lite.price]\n"1K" = 0.02\n')
    catalog = load_catalog(config)
    assert catalog.resolve("pro").price == {"1K": Decimal("0.134"), "2K": Decimal("0.134"), "4K": Decimal("0.26")}
    assert catalog.resolve("lite").price["1K"] == Decimal("0.02")


def test_unreadable_override_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[models.pro\n")
    with pytest.raises(ValueError, match="cannot read IMAGINE_CONFIG"):
        load_catalog(bad)


def test_prices_are_exact_decimals_and_batch_is_half():
    pro = load_catalog().resolve("pro")
    assert settle(pro, "2K", Lane.STANDARD, None) == Decimal("0.134")
    assert settle(pro, "4K", Lane.BATCH, None) == Decimal("0.12")
    usage = Usage(prompt_tokens=1000, image_tokens=1120, output_tokens=1120)
    assert settle(pro, "1K", Lane.STANDARD, usage) == Decimal("0.1364")  # 0.1344 + 0.002
    assert tokens_cost(pro, Lane.BATCH, usage) == Decimal("0.0682")
    # The estimate covers a long prompt and the input images, so it bounds the settlement.
    assert estimate(pro, "1K", Lane.STANDARD, input_images=2) >= settle(
        pro, "1K", Lane.STANDARD, Usage(prompt_tokens=600 + 2 * 1120, image_tokens=1120)
    )


def test_a_model_without_a_price_is_refused_not_free():
    with pytest.raises(Unpriced, match="No price"):
        estimate(load_catalog().resolve("lite"), "1K", Lane.STANDARD)


def test_secrets_are_masked_and_blank_means_unset(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("GEMINI_API_KEY=sk-very-secret\nSLACK_BOT_TOKEN=\nPORT=4000\n")
    settings = Settings()
    assert settings.gemini_api_key.get_secret_value() == "sk-very-secret"
    assert "sk-very-secret" not in repr(settings) and "sk-very-secret" not in str(settings)
    assert settings.slack_bot_token is None and settings.port == 4000
    assert settings.gemini_configured and not settings.slack_configured


def test_environment_wins_over_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///from-file.db\n")
    monkeypatch.setenv("DATABASE_URL", "sqlite:///from-env.db")
    assert Settings().database_url == "sqlite:///from-env.db"


def test_gateway_prices_and_failed_call_rule_are_data(tmp_path):
    config = tmp_path / "gw.toml"
    config.write_text(
        "[gateways.openrouter]\nbills_failed_calls = true\n"
        '[gateways.openrouter.price.flash]\n"1K" = 0.07\n'
        '[gateways.acme]\nprice = { "1k" = 0.05 }\nmodels = { pro = "acme/pro" }\n'
    )
    catalog = load_catalog(config)
    openrouter = catalog.gateways["openrouter"]
    assert openrouter.bills_failed_calls is True
    assert openrouter.price("pro", "4K") == Decimal("0.24")  # default kept
    assert openrouter.price("flash", "1K") == Decimal("0.07")  # one size of one model overridden
    assert openrouter.price("flash", "2K") == Decimal("0.101")
    assert openrouter.models["flash"] == "google/gemini-3.1-flash-image-preview"
    # A flat table prices every model the gateway serves alike.
    assert catalog.gateways["acme"].price("pro", "1K") == Decimal("0.05")
    assert catalog.gateways["acme"].models == {"pro": "acme/pro"}
    assert catalog.gateways["acme"].bills_failed_calls is False


def test_each_model_has_its_own_gateway_price_and_openrouters_size_names(tmp_path):
    openrouter = load_catalog().gateways["openrouter"]
    assert openrouter.price("flash", "1K") == Decimal("0.067") != openrouter.price("pro", "1K")
    assert openrouter.price("pro", "512") is None  # Pro makes no 512 image
    assert openrouter.size_name("512") == "0.5K" and openrouter.size_name("2K") == "2K"


def test_an_operators_flat_gateway_price_replaces_the_shipped_per_model_tables(tmp_path):
    # The form documented before per-model prices: it keeps loading, and prices every model alike.
    config = tmp_path / "gw.toml"
    config.write_text('[gateways.openrouter]\nprice = { "1K" = 0.2, "2K" = 0.3 }\n')
    gateway = load_catalog(config).gateways["openrouter"]
    assert gateway.price("pro", "1K") == gateway.price("flash", "1K") == Decimal("0.2")
    assert gateway.price("flash", "2K") == Decimal("0.3") and gateway.price("flash", "4K") is None


def test_a_flat_gateway_price_beside_per_model_tables_is_refused_not_ignored(tmp_path):
    config = tmp_path / "gw.toml"
    config.write_text('[gateways.openrouter.price]\n"1K" = 0.2\nflash = { "1K" = 0.07 }\n')
    with pytest.raises(ValueError, match=r"gateways.openrouter.*per-model"):
        load_catalog(config)


def test_the_database_url_is_logged_without_its_password_or_query():
    label = Settings(
        _env_file=None, database_url="postgresql://bot:s3cret@db:5432/imagine?sslmode=require"
    ).database_label
    assert label == "postgresql://bot:***@db:5432/imagine"
    assert Settings(_env_file=None, database_url="sqlite:///imagine.db").database_label == "sqlite:///imagine.db"
