"""One SMS stand-in process for these tests, emptied before each, and ``TwilioSms`` aimed at it."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.adapters.sms.twilio import TwilioSms
from tests.support.sms_sim import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    SmsSimClient,
    launch_sms_sim,
)


@dataclass
class SmsSim:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    control: SmsSimClient

    def sender(
        self,
        *,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        from_number: str = FROM_NUMBER,
        timeout: float = 5.0,
    ) -> TwilioSms:
        """A Twilio adapter aimed at this stand-in, with the account it knows unless told."""
        return TwilioSms(account_sid, auth_token, from_number, base_url=self.url, timeout=timeout)


@pytest.fixture(scope="session")
def sms_sim_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmsSim]:
    log_path = tmp_path_factory.mktemp("sms-sim") / "sms-sim.log"
    process, url = launch_sms_sim(log_path)
    yield SmsSim(url=url, process=process, log_path=log_path, control=SmsSimClient(url))
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def sms_sim(sms_sim_process: SmsSim) -> SmsSim:
    sms_sim_process.control.reset()
    return sms_sim_process


@pytest.fixture
async def sender(sms_sim: SmsSim) -> AsyncIterator[TwilioSms]:
    adapter = sms_sim.sender()
    yield adapter
    await adapter.close()
