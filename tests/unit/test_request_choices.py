"""What a form (the web playground) may offer a team for /imagine's options: today's models,
their ratios and sizes, and only the lanes this team and this bot's setup allow."""

from __future__ import annotations

import datetime

from bot.catalog import load_catalog
from bot.specs import SpecBuilder
from policies.config import PolicyBook

NOW = datetime.datetime(2026, 11, 30, tzinfo=datetime.UTC).timestamp()


def builder(*, batch_lane: bool, service_tiers: bool) -> SpecBuilder:
    policies = PolicyBook(teams={"VIP": {"priority": True}})
    return SpecBuilder(
        load_catalog(),
        policies,
        batch_lane=batch_lane,
        service_tiers=service_tiers,
        gateway_routes=(),
        clock=lambda: NOW,
    )


def test_only_live_models_with_every_ratio_and_size_they_take():
    catalog = load_catalog()
    choices = builder(batch_lane=False, service_tiers=False).choices("T1")
    today = datetime.date(2026, 11, 30)
    assert choices.models == tuple(catalog.live_aliases(today)) and "legacy" not in choices.models
    assert choices.default_model == catalog.default_model
    for alias in choices.models:
        info = catalog.models[alias]
        assert set(info.aspect_ratios) <= set(choices.aspect_ratios) and set(info.sizes) <= set(choices.sizes)
    assert len(set(choices.sizes)) == len(choices.sizes)


def test_lanes_follow_the_bot_s_setup_and_the_team_s_priority_policy():
    assert builder(batch_lane=False, service_tiers=False).choices("VIP").lanes == ("standard",)
    developer_api = builder(batch_lane=True, service_tiers=True)
    assert developer_api.choices("T1").lanes == ("standard", "batch", "flex")
    assert developer_api.choices("VIP").lanes == ("standard", "batch", "flex", "priority")
