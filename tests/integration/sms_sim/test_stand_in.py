"""The SMS stand-in itself, over plain HTTP: what a client other than our adapter would see."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.sms_sim.conftest import SmsSim
from tests.support.sms_sim import ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER

pytestmark = pytest.mark.integration

MESSAGES = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def _send(sim: SmsSim, path: str = MESSAGES, **form: str) -> httpx.Response:
    return httpx.post(sim.url + path, data=form, auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10)


def test_a_message_reads_back_queued_then_delivered(sms_sim: SmsSim) -> None:
    created = _send(sms_sim, To="+4915112345678", From=FROM_NUMBER, Body="hi")

    assert created.status_code == 201, created.text
    message = created.json()
    assert message["status"] == "queued"
    assert message["api_version"] == "2010-04-01"
    assert (message["price"], message["error_code"]) == (None, None)
    assert message["date_created"].endswith(" +0000")
    fetched = httpx.get(
        sms_sim.url + message["uri"], auth=(ACCOUNT_SID, AUTH_TOKEN), timeout=10
    ).json()
    assert (fetched["sid"], fetched["status"]) == (message["sid"], "delivered")


@pytest.mark.parametrize(
    ("form", "code", "message"),
    [
        ({"From": FROM_NUMBER, "Body": "x"}, 21604, "A 'To' phone number is required."),
        (
            {"To": "12345", "From": FROM_NUMBER, "Body": "x"},
            21211,
            "The 'To' number 12345 is not a valid phone number.",
        ),
        ({"To": "+4915112345678", "From": FROM_NUMBER}, 21602, "Message body is required."),
        ({"To": "+4915112345678", "From": FROM_NUMBER, "Body": "x" * 1601}, 21617, "1600"),
        ({"To": "+4915112345678", "From": "+15005550999", "Body": "x"}, 21606, "+15005550999"),
    ],
)
def test_refusals_carry_twilio_error_bodies(
    sms_sim: SmsSim, form: dict[str, str], code: int, message: str
) -> None:
    response = _send(sms_sim, **form)

    assert response.status_code == 400
    error = response.json()
    assert (error["code"], error["status"]) == (code, 400)
    assert message in error["message"]
    assert error["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


def test_an_unknown_account_is_not_found_and_bad_auth_is_401(sms_sim: SmsSim) -> None:
    other = "/2010-04-01/Accounts/AC" + "1" * 32 + "/Messages.json"
    assert _send(sms_sim, other, To="+4915112345678").json()["code"] == 20404
    unauthenticated = httpx.post(sms_sim.url + MESSAGES, data={"To": "+4915112345678"}, timeout=10)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["code"] == 20003
    assert unauthenticated.headers["WWW-Authenticate"].startswith("Basic")


def test_a_request_over_the_size_limit_is_refused(sms_sim: SmsSim) -> None:
    response = _send(sms_sim, To="+4915112345678", From=FROM_NUMBER, Body="x" * 100_000)

    assert response.status_code == 413
    assert sms_sim.control.messages() == []


def test_messages_can_be_listed_for_one_recipient(sms_sim: SmsSim) -> None:
    for to in ("+4915112345678", "+4915187654321", "+4915112345678"):
        assert _send(sms_sim, To=to, From=FROM_NUMBER, Body=to).status_code == 201

    assert [m["body"] for m in sms_sim.control.messages("+4915112345678")] == [
        "+4915112345678",
        "+4915112345678",
    ]
    assert len(sms_sim.control.messages()) == 3
    sms_sim.control.reset()
    assert sms_sim.control.status()["messages"] == 0


def test_a_planned_fault_fails_exactly_the_next_sends(sms_sim: SmsSim) -> None:
    sms_sim.control.fault(503, times=2)

    answers = [_send(sms_sim, To="+4915112345678", From=FROM_NUMBER, Body="x") for _ in range(3)]

    assert [a.status_code for a in answers] == [503, 503, 201]
    assert answers[0].json()["code"] == 20503
    assert sms_sim.control.status()["faulted"] == 2
