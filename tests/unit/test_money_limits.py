"""Configuration that could spend on a model without a price is named at load, before any
request (the limits through the service on both stores: tests/integration)."""

from __future__ import annotations

from bot.catalog import load_catalog
from bot.config_check import unpriced_paths
from policies.config import PolicyBook


def test_configuration_that_would_run_an_unpriced_model_is_named_at_load():
    catalog = load_catalog()
    policies = PolicyBook(
        {"fallback": {"flash": ["pro"]}},
        {"T9": {"fallback": {"pro": ["flash", "lite"]}}, "T8": {"fallback": {"pro": ["nowhere:pro"]}}},
    )
    problems = unpriced_paths(catalog, policies, gateway_routes=("openrouter",))
    assert len(problems) == 2
    assert 'team "T9" fallback pro -> flash, lite' in problems[0] and "'lite'" in problems[0]
    assert 'team "T8"' in problems[1] and "route 'nowhere'" in problems[1]
    assert (
        unpriced_paths(
            catalog, PolicyBook({"fallback": {"pro": ["flash", "openrouter:pro"]}}), gateway_routes=("openrouter",)
        )
        == []
    )
    assert unpriced_paths(catalog, PolicyBook(), gateway_routes=("unknown-gw",))


def test_a_gateway_serving_a_model_it_has_no_price_for_is_named_at_load(tmp_path):
    config = tmp_path / "gw.toml"
    config.write_text(
        '[gateways.acme]\nmodels = { pro = "acme/pro", flash = "acme/flash" }\n'
        '[gateways.acme.price]\npro = { "1K" = 0.1, "2K" = 0.1, "4K" = 0.2 }\n'
        'flash = { "1K" = 0.05 }\n'
    )
    problems = unpriced_paths(load_catalog(config), PolicyBook(), gateway_routes=("acme",))
    assert problems == [
        "gateway route 'acme' has no price for flash at 512, 2K, 4K: add them to "
        "[gateways.acme.price] flash in IMAGINE_CONFIG"
    ]
    assert unpriced_paths(load_catalog(), PolicyBook(), gateway_routes=("openrouter",)) == []
