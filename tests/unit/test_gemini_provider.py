"""The Gemini provider's error mapping, read from SDK errors built in memory: quota and
free-tier answers, retry hints and user messages (the wire: tests/integration)."""

from __future__ import annotations

import re

import pytest
from google.genai import errors as genai_errors

from bot.providers.errors import (
    AuthError,
    BadRequestError,
    BillingNotEnabled,
    BlockedError,
    CredentialsError,
    NoImageError,
    OverloadedError,
    PermissionDeniedError,
    ProviderError,
    QuotaError,
)
from bot.providers.gemini import map_api_error, retry_delay


@pytest.mark.parametrize("quota_value", ["20", 1])
def test_a_free_tier_quota_above_zero_is_a_passing_rate_limit(quota_value):
    # A free-tier project that used up a quota it has waits, like a paid one.
    exc = quota(
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier", "quotaValue": quota_value}
                ],
            }
        ]
    )
    assert type(map_api_error(exc)) is QuotaError


@pytest.mark.parametrize("quota_value", ["0", 0, None])
def test_a_free_tier_quota_of_zero_is_billing_whatever_its_json(quota_value):
    violation = {"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}
    if quota_value is not None:
        violation["quotaValue"] = quota_value
    exc = quota([{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}])
    assert type(map_api_error(exc)) is BillingNotEnabled


@pytest.mark.parametrize(
    "cls",
    [
        AuthError,
        PermissionDeniedError,
        QuotaError,
        OverloadedError,
        BlockedError,
        BadRequestError,
        ProviderError,
        BillingNotEnabled,
        CredentialsError,
        NoImageError,
    ],
)
def test_user_messages_are_friendly(cls):
    message = cls.user_message
    assert message.strip() and message == message.strip()
    assert "\n" not in message
    for raw in ("{", "}", "Traceback", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", "HTTP", "error:"):
        assert raw not in message


def test_a_refresh_error_google_auth_calls_retryable_is_transient():
    from google.auth import exceptions as auth_errors

    from bot.providers.gemini import map_auth_error

    assert type(map_auth_error(auth_errors.RefreshError("server_error", retryable=True))) is OverloadedError
    assert type(map_auth_error(auth_errors.RefreshError("invalid_grant"))) is CredentialsError


def quota(details: list | None = None, **extra) -> genai_errors.ClientError:
    err = {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED", **extra}
    if details is not None:
        err["details"] = details
    return genai_errors.ClientError(429, {"error": err})


def retry_info(delay) -> dict:
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


@pytest.mark.parametrize(
    "delay, expected",
    [
        ("12s", 12.0),
        ("0.5s", 0.5),
        ("7s", 7.0),
        (" 3s ", 3.0),
        ("0s", 0.0),
    ],
)
def test_retry_delay_parses_retry_info(delay, expected):
    assert retry_delay(quota([retry_info(delay)])) == expected


@pytest.mark.parametrize(
    "details",
    [
        None,  # Google omits the key when there are no details
        [],
        [{"@type": "type.googleapis.com/google.rpc.Help", "links": []}],
        [retry_info("soon")],
        [retry_info("12")],  # no unit
        [retry_info("1m")],
        ["not-a-dict"],
    ],
    ids=["no-details", "empty", "help-only", "garbage", "no-unit", "minutes", "not-dict"],
)
def test_retry_delay_none_when_absent_or_unparseable(details):
    assert retry_delay(quota(details)) is None


def test_retry_delay_skips_other_details():
    details = [{"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []}, retry_info("12s")]
    assert retry_delay(quota(details)) == 12.0


def test_retry_delay_without_response_or_error_wrapper():
    # A body without the {"error": ...} wrapper still works; no response object means no header.
    exc = genai_errors.ClientError(429, {"message": "x", "details": [retry_info("4s")]})
    assert retry_delay(exc) == 4.0
    assert retry_delay(genai_errors.ClientError(429, {"message": "x"})) is None


def test_map_api_error_directly():
    mapped = map_api_error(quota([retry_info("12s")]))
    assert isinstance(mapped, QuotaError) and mapped.retry_after == 12.0
    assert mapped.status_code == 429
    bad_key = genai_errors.ClientError(
        400,
        {
            "error": {
                "code": 400,
                "message": "API key not valid. Please pass a valid API key.",
                "status": "INVALID_ARGUMENT",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
            }
        },
    )
    assert isinstance(map_api_error(bad_key), AuthError)
    precondition = genai_errors.ClientError(
        400, {"error": {"code": 400, "message": "User location is not supported", "status": "FAILED_PRECONDITION"}}
    )
    assert isinstance(map_api_error(precondition), PermissionDeniedError)
    assert re.search(r"FAILED_PRECONDITION", map_api_error(precondition).detail)
