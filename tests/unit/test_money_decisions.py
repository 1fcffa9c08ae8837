"""bot.money's pure decisions, with no database, worker or provider: what a request
holds, whether to ask first, what each call is charged, and whether a failed attempt is retried."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from bot.catalog import Catalog, GatewayInfo, load_catalog
from bot.money import reported_usd, to_micros
from bot.money.admission import Charge
from bot.money.budgets import Budget, BudgetStatus, Period, Scope, budget_from_input
from bot.money.charges import (
    FailedCall,
    charge_for_failure,
    charge_for_hedged_failure,
    charge_for_success,
    overshoot_micros,
)
from bot.money.estimates import fits, gateway_prices, hold_estimate, near_edge, newly_past_threshold
from bot.money.pricing import Unpriced, estimate, image_price, settle, tokens_cost
from bot.quotes import Quote, Quoter
from bot.retries import retry_decision
from bot.specs import SpecBuilder
from bot.store.ports import after_failure
from bot.types import GenerationSpec, ImagineRequest, InvalidRequest, JobState, Lane, NeedsConfirmation, Usage
from policies.config import PolicyBook, TeamPolicy
from policies.routing import downgrade_for, over_confirm_limit

USAGE = Usage(prompt_tokens=300, image_tokens=1120, text_tokens=40, thoughts_tokens=200)


def with_gateway(catalog: Catalog, *, bills_failed_calls: bool, pro_1k: str = "0.5") -> Catalog:
    gateway = GatewayInfo("acme", bills_failed_calls, prices={"pro": {"1K": Decimal(pro_1k)}})
    return replace(catalog, gateways={**catalog.gateways, "acme": gateway})


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def spec(**overrides) -> GenerationSpec:
    fields = dict(prompt="a koi pond", model_alias="pro", model_id="gemini-3-pro-image", aspect_ratio="1:1", size="1K")
    return GenerationSpec(**{**fields, **overrides})


def gemini_estimate(catalog, alias, the_spec, images=0):
    return estimate(catalog.resolve(alias), the_spec.size, the_spec.lane, images, prompt_chars=len(the_spec.prompt))


# -- estimates ------------------------------------------------------------------------------------


def test_the_hold_is_the_asked_models_estimate_without_fallbacks(catalog):
    the_spec = spec()
    assert hold_estimate(catalog, the_spec, 0) == gemini_estimate(catalog, "pro", the_spec)


def test_the_hold_is_the_max_over_the_fallbacks(catalog):
    # Flash asked for, Pro as its fallback: the hold covers Pro, the dearer.
    the_spec = spec(model_alias="flash", model_id="gemini-3.1-flash-image", fallbacks=("pro",))
    assert hold_estimate(catalog, the_spec, 0) == gemini_estimate(catalog, "pro", the_spec)
    assert gemini_estimate(catalog, "pro", the_spec) > gemini_estimate(catalog, "flash", the_spec)


def test_the_hold_counts_the_attachments_and_the_image_being_edited(catalog):
    the_spec = spec(parent_image_id=7)
    assert hold_estimate(catalog, the_spec, 1) == gemini_estimate(catalog, "pro", the_spec, images=2)


def test_a_gateway_route_dearer_than_gemini_sets_the_hold(catalog):
    gateways = with_gateway(catalog, bills_failed_calls=False, pro_1k="0.9")
    the_spec = spec(model_alias="flash", model_id="gemini-3.1-flash-image", fallbacks=("acme:pro",))
    assert hold_estimate(gateways, the_spec, 0) == Decimal("0.9")


def test_each_gateway_the_bot_runs_may_serve_the_asked_model_and_counts(catalog):
    gateways = with_gateway(catalog, bills_failed_calls=False, pro_1k="0.9")
    assert hold_estimate(gateways, spec(), 0, ("acme",)) == Decimal("0.9")
    assert hold_estimate(gateways, spec(), 0, ()) == gemini_estimate(catalog, "pro", spec())
    # Other lanes are Gemini's alone: no gateway prices count there.
    assert gateway_prices(gateways, spec(lane=Lane.FLEX), ("pro",), ("acme",)) == []


def test_a_gateway_prices_each_model_at_its_own_price(catalog):
    openrouter = catalog.gateways["openrouter"]
    prices = gateway_prices(catalog, spec(), ("openrouter:flash", "openrouter:pro"), ())
    assert prices == [openrouter.price("flash", "1K"), openrouter.price("pro", "1K")]


def test_a_hedged_request_holds_the_two_dearest_of_its_chain(catalog):
    the_spec = spec(fallbacks=("flash", "legacy"), hedge_after_s=20)
    each = sorted((gemini_estimate(catalog, alias, the_spec) for alias in ("pro", "flash", "legacy")), reverse=True)
    assert hold_estimate(catalog, the_spec, 0) == each[0] + each[1]


def test_an_unpriced_fallback_is_skipped_but_an_unpriced_model_is_refused(catalog):
    unpriced = replace(catalog.resolve("flash"), price={})
    cheap = replace(catalog, models={**catalog.models, "flash": unpriced})
    assert hold_estimate(cheap, spec(fallbacks=("flash",)), 0) == gemini_estimate(catalog, "pro", spec())
    with pytest.raises(Unpriced):
        hold_estimate(cheap, spec(model_alias="flash", model_id="gemini-3.1-flash-image"), 0)


def status(limit: str, spent: str, held: str = "0", threshold: float = 0.8) -> BudgetStatus:
    budget = Budget("T1", Scope.TEAM, "", to_micros(Decimal(limit)), Period.MONTH, soft_threshold=threshold)
    return BudgetStatus(budget, to_micros(Decimal(spent)), to_micros(Decimal(held)), resets_at=0.0)


def test_fit_and_the_alert_line_are_read_from_spent_plus_held():
    statuses = [status("10", "7", "0.5"), status("100", "1")]
    assert fits(statuses, Decimal("2.5")) and not fits(statuses, Decimal("2.6"))
    assert near_edge(statuses, Decimal("0.6")) == [statuses[0]] and near_edge(statuses, Decimal("0.4")) == []
    # Only a budget this hold takes past its line raises an alert, not one already past it.
    assert newly_past_threshold(statuses, to_micros(Decimal("0.6"))) == [statuses[0]]
    assert newly_past_threshold([status("10", "9")], to_micros(Decimal("0.1"))) == []


def test_the_threshold_decision_is_the_teams():
    assert downgrade_for(TeamPolicy(over_soft_threshold="downgrade"), "pro") == "flash"
    assert downgrade_for(TeamPolicy(over_soft_threshold="downgrade"), "flash") is None  # nothing cheaper
    assert downgrade_for(TeamPolicy(over_soft_threshold="confirm"), "pro") is None
    assert over_confirm_limit(TeamPolicy(confirm_above_usd=Decimal("0.5")), Decimal("0.51"))
    assert not over_confirm_limit(TeamPolicy(confirm_above_usd=Decimal("0.5")), Decimal("0.5"))
    assert not over_confirm_limit(TeamPolicy(confirm_above_usd=None), Decimal(1000))


def test_a_budget_as_typed_is_checked():
    budget = budget_from_input("T1", "$12.5", " Week ", scope=Scope.TEAM, scope_id="", soft_threshold=0.9)
    assert (budget.limit_micros, budget.period, budget.soft_threshold) == (12_500_000, Period.WEEK, 0.9)
    for amount, period, scope, scope_id, threshold in [
        ("NaN", "month", Scope.TEAM, "", 0.8),
        ("-1", "month", Scope.TEAM, "", 0.8),
        ("1000001", "month", Scope.TEAM, "", 0.8),
        ("ten", "month", Scope.TEAM, "", 0.8),
        ("5", "year", Scope.TEAM, "", 0.8),
        ("5", "month", Scope.USER, "", 0.8),
        ("5", "month", Scope.TEAM, "U1", 0.8),
        ("5", "month", Scope.TEAM, "", 1.5),
    ]:
        with pytest.raises(InvalidRequest):
            budget_from_input("T1", amount, period, scope=scope, scope_id=scope_id, soft_threshold=threshold)


# -- charges --------------------------------------------------------------------------------------


def test_a_success_is_charged_its_reported_cost_else_its_usage_at_the_lane_served(catalog):
    model, bill = charge_for_success(
        catalog, model_alias="flash", size="1K", lane=Lane.STANDARD, reported_cost=Decimal("0.07"), usage=USAGE
    )
    assert model.alias == "flash" and bill.charge == Charge(70_000, USAGE, "succeeded")
    _, bill = charge_for_success(
        catalog, model_alias="pro", size="1K", lane=Lane.BATCH, reported_cost=None, usage=USAGE
    )
    assert bill.cost == settle(catalog.resolve("pro"), "1K", Lane.BATCH, USAGE)
    _, bill = charge_for_success(
        catalog, model_alias="pro", size="2K", lane=Lane.STANDARD, reported_cost=None, usage=None
    )
    assert bill.cost == image_price(catalog.resolve("pro"), "2K", Lane.STANDARD)  # never free


def blocked(**overrides) -> FailedCall:
    fields = dict(
        kind="blocked",
        model_alias="pro",
        route="gemini",
        blocked=True,
        answered=True,
        reason="IMAGE_SAFETY",
        usage=USAGE,
    )
    return FailedCall(**{**fields, **overrides})


def test_failure_rule_1_an_answer_with_a_reported_charge_is_charged_that(catalog):
    bill = charge_for_failure(
        with_gateway(catalog, bills_failed_calls=True),
        blocked(route="acme", reported_cost=Decimal("0.002")),
        size="1K",
        lane=Lane.STANDARD,
    )
    assert bill.charge == Charge(2_000, USAGE, "blocked")
    assert bill.result == {"block_reason": "IMAGE_SAFETY", "cost_usd": "0.002"}


def test_failure_rule_2_a_gateway_bills_failed_calls_at_its_price_or_not_at_all(catalog):
    call = FailedCall(kind="overloaded", model_alias="pro", route="acme")
    billing = charge_for_failure(with_gateway(catalog, bills_failed_calls=True), call, size="1K", lane=Lane.STANDARD)
    assert billing.charge == Charge(500_000, None, "overloaded") and billing.result == {"cost_usd": "0.5"}
    free = charge_for_failure(with_gateway(catalog, bills_failed_calls=False), call, size="1K", lane=Lane.STANDARD)
    assert free.charge is None and free.result == {}
    # A gateway's rule wins over token counts: an answer without a reported charge is free there.
    answer = charge_for_failure(
        with_gateway(catalog, bills_failed_calls=False), blocked(route="acme"), size="1K", lane=Lane.STANDARD
    )
    assert answer.charge is None and answer.result == {"block_reason": "IMAGE_SAFETY"}
    # ... and a size it has no price for is not billed either.
    unpriced = charge_for_failure(with_gateway(catalog, bills_failed_calls=True), call, size="4K", lane=Lane.STANDARD)
    assert unpriced.charge is None


def test_failure_rule_3_an_answer_is_charged_its_tokens_at_the_rates_of_the_model_that_ran(catalog):
    call = blocked(kind="no_image", blocked=False, reason="MAX_TOKENS", model_alias="flash")
    bill = charge_for_failure(catalog, call, size="1K", lane=Lane.FLEX)
    cost = tokens_cost(catalog.resolve("flash"), Lane.FLEX, USAGE)
    assert bill.charge == Charge(to_micros(cost), USAGE, "failed")
    assert bill.result == {"finish_reason": "MAX_TOKENS", "usage": USAGE.to_json(), "cost_usd": str(cost)}


def test_failure_rule_4_an_image_we_could_not_use_is_charged_what_it_was_billed(catalog):
    call = FailedCall(kind="invalid_image", model_alias="pro", route="acme")
    # Even through a gateway: the call returned an image, so its success price is the bill.
    bill = charge_for_failure(
        with_gateway(catalog, bills_failed_calls=False),
        call,
        size="1K",
        lane=Lane.STANDARD,
        billed=Decimal("0.134"),
        billed_usage=USAGE,
    )
    assert bill.charge == Charge(134_000, USAGE, "failed") and bill.result == {"cost_usd": "0.134"}


def test_a_failure_before_any_answer_is_free(catalog):
    bill = charge_for_failure(
        catalog, FailedCall(kind="quota", model_alias="pro", route="gemini"), size="1K", lane=Lane.STANDARD
    )
    assert bill.charge is None and bill.bill is None and bill.result == {}
    # An answer that reported neither a charge nor tokens is free too, but says why it failed.
    bill = charge_for_failure(catalog, blocked(usage=None), size="1K", lane=Lane.STANDARD)
    assert bill.charge is None and bill.result == {"block_reason": "IMAGE_SAFETY"}


def test_a_hedged_calls_failure_is_charged_its_figure_else_its_tokens_else_its_gateways_rule(catalog):
    gateway = with_gateway(catalog, bills_failed_calls=True)
    hedge = blocked(route="acme", reported_cost=Decimal("0.01"))
    assert charge_for_hedged_failure(gateway, hedge, size="1K", lane=Lane.STANDARD).charge == Charge(
        10_000, USAGE, "blocked"
    )
    tokens = charge_for_hedged_failure(gateway, blocked(route="acme"), size="1K", lane=Lane.STANDARD)
    assert tokens.cost == tokens_cost(catalog.resolve("pro"), Lane.STANDARD, USAGE)
    overloaded = FailedCall(kind="overloaded", model_alias="pro", route="acme")
    assert charge_for_hedged_failure(gateway, overloaded, size="1K", lane=Lane.STANDARD).charge == Charge(
        500_000, None, "overloaded"
    )
    assert (
        charge_for_hedged_failure(catalog, replace(overloaded, route="gemini"), size="1K", lane=Lane.STANDARD) is None
    )


def test_an_overshoot_is_what_a_call_cost_past_its_hold():
    assert overshoot_micros(150, 100) == 50
    assert overshoot_micros(100, 100) == 0 and overshoot_micros(80, 100) == 0
    assert overshoot_micros(150, 0) == 0  # a hold of 0 is unknown, not an overshoot


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0.0123, Decimal("0.0123")),
        ("0.5", Decimal("0.5")),
        (0, Decimal(0)),
        (None, None),
        (True, None),
        ("n/a", None),
        (-0.1, None),
        (float("inf"), None),
        (float("nan"), None),
        ([1], None),
    ],
)
def test_a_reported_cost_is_a_finite_non_negative_number_or_nothing(raw, expected):
    assert reported_usd(raw) == expected


# -- the retry decision ---------------------------------------------------------------------------


def decide(**overrides):
    fields = dict(
        retryable=True,
        blocked=False,
        attempts_cap=None,
        retry_after=None,
        attempt=1,
        max_attempts=3,
        lane=Lane.STANDARD,
        created_at=1000.0,
        now=1010.0,
        deadline=900.0,
        relaxed_deadline=86400.0,
        retry_base=2.0,
        retry_cap=120.0,
        jitter=lambda low, high: high,
    )
    return retry_decision(**{**fields, **overrides})


def test_a_retryable_failure_is_queued_again_after_a_jittered_backoff():
    decision = decide(attempt=2)
    assert decision.retry and decision.state is JobState.QUEUED
    assert decision.delay == 4.0 and decision.retry_at == 1014.0  # base * 2**(attempt-1), the jitter's top
    assert not decision.billed
    assert decide(attempt=10).delay == 120.0  # capped


def test_the_servers_retry_after_is_used_as_is():
    assert decide(retry_after=30.0, jitter=lambda *_: pytest.fail("no jitter")).delay == 30.0


def test_the_last_attempt_of_a_retryable_failure_is_dead():
    decision = decide(attempt=3)
    assert decision.retryable and not decision.retry and decision.state is JobState.DEAD


def test_waiting_for_a_paused_route_costs_no_attempt():
    # The last attempt, but no call was made: the job waits for the route, attempts intact.
    decision = decide(attempt=3, called=False, retry_after=42.0)
    assert decision.retry and decision.refund_attempt and decision.retry_at == 1052.0
    assert not decide(attempt=3).refund_attempt
    # Its deadline still holds: waiting past it ends the job.
    assert decide(attempt=1, called=False, retry_after=10**9).state is JobState.DEAD


def test_a_failure_class_capped_at_n_calls_is_final_from_the_nth():
    assert decide(attempts_cap=2, attempt=1).retry
    decision = decide(attempts_cap=2, attempt=2)
    assert not decision.retryable and decision.state is JobState.FAILED


def test_a_refusal_is_final_and_blocked_and_billed_when_charged():
    charge = Charge(2_000, USAGE, "blocked")
    decision = decide(retryable=False, blocked=True, charge=charge)
    assert decision.state is decision.final_state is JobState.BLOCKED
    assert decision.billed and decision.charge == charge


def test_past_the_deadline_a_retry_would_be_too_late_and_the_job_is_dead():
    decision = decide(now=1000.0 + 899.0, retry_after=2.0)
    assert not decision.retryable and decision.state is JobState.DEAD
    # Flex and Batch retries get the relaxed lanes' days.
    for lane in (Lane.FLEX, Lane.BATCH):
        assert decide(lane=lane, now=1000.0 + 899.0, retry_after=2.0).retry
    assert not decide(lane=Lane.FLEX, now=1000.0 + 86399.0, retry_after=2.0).retry


def test_the_decision_agrees_with_the_stores_rule():
    for retryable in (True, False):
        for attempt in (1, 2, 3):
            decision = decide(retryable=retryable, attempt=attempt)
            assert decision.state is after_failure(decision.retryable, attempt, 3, decision.final_state)


# -- whether to ask first (bot.quotes over the team's thresholds) ---------------------------------


def quoter(catalog, **policy) -> Quoter:
    policies = PolicyBook({"confirm_above_usd": None, **policy})
    specs = SpecBuilder(
        catalog, policies, batch_lane=False, service_tiers=False, gateway_routes=(), clock=lambda: 1_800_000_000.0
    )
    return Quoter(specs, catalog, policies, ())


def pro_quote(catalog, the_quoter, req) -> Quote:
    the_spec = the_quoter._specs.spec(req, req.prompt, "pro", None, "1K", None, 0)
    return Quote(the_spec, the_quoter.estimate(the_spec, 0))


REQ = ImagineRequest(prompt="a koi pond", team="T1", channel="C1", user="U1", platform="slack")


def test_far_from_every_alert_line_the_quote_runs_as_is(catalog):
    the_quoter = quoter(catalog)
    quote = pro_quote(catalog, the_quoter, REQ)
    assert the_quoter.ask_first(REQ, quote, [status("100", "0")], 0) == quote


def test_near_an_alert_line_a_downgrade_team_gets_the_cheaper_model(catalog):
    the_quoter = quoter(catalog, over_soft_threshold="downgrade")
    quote = pro_quote(catalog, the_quoter, REQ)
    asked = the_quoter.ask_first(REQ, quote, [status("1", "0.75")], 0)
    assert isinstance(asked, Quote) and asked.spec.model_alias == "flash" and asked.downgraded_from == "pro"
    assert asked.estimate < quote.estimate


def test_near_an_alert_line_a_confirm_team_is_asked_with_the_flash_price(catalog):
    the_quoter = quoter(catalog, over_soft_threshold="confirm")
    quote = pro_quote(catalog, the_quoter, REQ)
    asked = the_quoter.ask_first(REQ, quote, [status("1", "0.75")], 0)
    assert isinstance(asked, NeedsConfirmation) and "alert line" in asked.detail
    assert asked.estimate_usd == quote.estimate and asked.flash_estimate_usd < quote.estimate


def test_a_downgrade_the_channel_forbids_is_asked_instead(catalog):
    the_quoter = quoter(catalog, over_soft_threshold="downgrade", channels={"C1": {"models": ["pro"]}})
    asked = the_quoter.ask_first(REQ, pro_quote(catalog, the_quoter, REQ), [status("1", "0.75")], 0)
    assert isinstance(asked, NeedsConfirmation)


def test_above_the_per_image_limit_anyone_is_asked(catalog):
    the_quoter = quoter(catalog, confirm_above_usd="0.10")
    asked = the_quoter.ask_first(REQ, pro_quote(catalog, the_quoter, REQ), [], 0)
    assert isinstance(asked, NeedsConfirmation) and "per-image limit" in asked.detail


def test_a_refusal_suggests_the_cheaper_model_only_when_it_fits(catalog):
    the_quoter = quoter(catalog)
    the_spec = pro_quote(catalog, the_quoter, REQ).spec
    assert "flash image" in the_quoter.cheaper_hint(REQ, the_spec, 0, [status("1", "0.8")])
    assert the_quoter.cheaper_hint(REQ, the_spec, 0, [status("1", "0.99")]) == ""
