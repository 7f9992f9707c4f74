"""One reading of ``Retry-After`` for fetching and delivery (newsletter.retry)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from newsletter.retry import rate_limit_wait, retry_after_seconds

NOW = datetime(2025, 11, 14, 12, 0, tzinfo=UTC)


def test_seconds_fractions_and_http_dates() -> None:
    assert retry_after_seconds(" 7 ", NOW) == 7.0
    assert retry_after_seconds("0.2", NOW) == 0.2  # the local SendGrid server sends fractions
    assert retry_after_seconds("Fri, 14 Nov 2025 12:00:30 GMT", NOW) == 30.0
    assert retry_after_seconds("Fri, 14 Nov 2025 11:00:00 GMT", NOW) == 0.0  # in the past: now
    for junk in ("-5", "soon", "nan", "inf", "", None):
        assert retry_after_seconds(junk, NOW) is None, junk


def test_rate_limit_wait_prefers_retry_after_then_the_reset_time() -> None:
    reset = str(int(NOW.timestamp()) + 40)
    assert rate_limit_wait(httpx.Headers({"Retry-After": "3", "X-RateLimit-Reset": reset}), NOW) == 3.0
    assert rate_limit_wait(httpx.Headers({"X-RateLimit-Reset": reset}), NOW) == 40.0
    assert rate_limit_wait({"Retry-After": "later", "X-RateLimit-Reset": "0"}, NOW) == 0.0
    assert rate_limit_wait({"X-RateLimit-Reset": "tomorrow"}, NOW) is None
    assert rate_limit_wait({}, NOW) is None and rate_limit_wait(None, NOW) is None


def test_one_policy_decides_the_wait_for_fetching_and_delivery() -> None:
    from newsletter.retry import GiveUp, RetryPolicy

    policy = RetryPolicy(retries=3, backoff=0.5, max_wait=60)
    assert [policy.next_wait(n, None) for n in range(3)] == [0.5, 1.0, 2.0]  # doubling
    assert policy.next_wait(0, 7.0) == 7.0  # the server's Retry-After wins over the backoff
    assert policy.next_wait(3, None) == GiveUp("attempts")
    assert policy.next_wait(0, 61.0) == GiveUp("asks too long")
    assert policy.next_wait(1, None, left=0.9) == GiveUp("deadline")
    assert policy.next_wait(1, None, left=1.1) == 1.0
