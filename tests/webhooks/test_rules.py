"""The rules of webhooks as plain functions: Standard Webhooks signatures (checked by the
`standardwebhooks` package), the real retry schedule's arithmetic, and the address table of
the SSRF rule."""

from __future__ import annotations

import base64
import ipaddress
import random
import time
from datetime import timedelta

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from taskhub.config import WEBHOOK_RETRY_SCHEDULE
from taskhub.webhooks import signing
from taskhub.webhooks.addresses import refusal
from taskhub.webhooks.delivery import retry_delay
from tests.conftest import make_settings

BODY = b'{"id":"0b7c","type":"order.paid","payload":{"order_id":1}}'


def test_a_signature_verifies_with_standardwebhooks() -> None:
    secret = signing.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    now = int(time.time())
    headers = signing.signed_headers([secret], msg_id="msg_1", timestamp=now, body=BODY)
    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(now)
    assert headers["content-type"] == "application/json"
    assert Webhook(secret).verify(BODY, headers) == {
        "id": "0b7c",
        "type": "order.paid",
        "payload": {"order_id": 1},
    }
    for tampered in (
        {**headers, "webhook-id": "msg_2"},
        {**headers, "webhook-timestamp": str(now + 1)},
    ):
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(BODY, tampered)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY + b" ", headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(BODY, headers)


def test_two_secrets_sign_side_by_side() -> None:
    old, new = signing.new_secret(), signing.new_secret()
    headers = signing.signed_headers([new, old], msg_id="m", timestamp=int(time.time()), body=BODY)
    assert headers["webhook-signature"].count("v1,") == 2
    assert Webhook(old).verify(BODY, headers)
    assert Webhook(new).verify(BODY, headers)


def test_the_real_schedule_is_the_designs() -> None:
    settings = make_settings()
    assert settings.webhook_retry_schedule == list(WEBHOOK_RETRY_SCHEDULE)
    # 5 s, 5 min, 30 min, 2 h, 5 h, 10 h: a failing delivery is given up after about 17.6 h.
    assert WEBHOOK_RETRY_SCHEDULE == (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600)
    assert timedelta(seconds=sum(WEBHOOK_RETRY_SCHEDULE)) == timedelta(hours=17, seconds=2105)
    assert settings.webhook_timeout_seconds == 10
    assert settings.webhook_allow_private is False


def test_each_retry_waits_its_delay_with_twenty_percent_jitter() -> None:
    rng = random.Random(7)  # noqa: S311
    for failed, nominal in enumerate(WEBHOOK_RETRY_SCHEDULE, start=1):
        delays = [retry_delay(failed, WEBHOOK_RETRY_SCHEDULE, rng=rng) for _ in range(500)]
        assert all(d is not None and 0.8 * nominal <= d <= 1.2 * nominal for d in delays)
        # Jitter spreads the retries over the whole band, not one point.
        assert min(d for d in delays if d is not None) < 0.85 * nominal
        assert max(d for d in delays if d is not None) > 1.15 * nominal
    # After the sixth retry fails, the delivery is given up.
    assert retry_delay(len(WEBHOOK_RETRY_SCHEDULE) + 1, WEBHOOK_RETRY_SCHEDULE) is None
    assert retry_delay(1, []) is None
    assert retry_delay(0, WEBHOOK_RETRY_SCHEDULE) is None


def test_the_schedule_is_a_setting() -> None:
    assert make_settings(webhook_retry_schedule="0.5, 2,10").webhook_retry_schedule == [
        0.5,
        2,
        10,
    ]
    assert make_settings(webhook_retry_schedule="[1, 3]").webhook_retry_schedule == [1, 3]
    assert make_settings(webhook_retry_schedule="").webhook_retry_schedule == []
    with pytest.raises(ValueError, match="WEBHOOK_RETRY_SCHEDULE"):
        make_settings(webhook_retry_schedule="5,-1")


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.10", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("100.64.0.1", "shared"),
        ("100.127.255.254", "shared"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 (an address under test, not a binding)
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("192.0.2.1", "private"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("2002:7f00:1::", "loopback"),  # 6to4 carrying 127.0.0.1
        ("64:ff9b::a00:1", "private"),  # NAT64 carrying 10.0.0.1
    ],
)
def test_addresses_that_reach_inside_are_refused(address: str, why: str) -> None:
    ip = ipaddress.ip_address(address)
    reason = refusal(ip, allow_private=False)
    assert reason is not None
    assert why in reason
    if why == "metadata":
        assert refusal(ip, allow_private=True) is not None
    else:
        assert refusal(ip, allow_private=True) is None


@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ipaddress.ip_address(address), allow_private=False) is None
