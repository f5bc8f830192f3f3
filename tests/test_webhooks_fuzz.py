"""Run the webhook fuzz harness briefly so CI exercises it."""

from __future__ import annotations

import pytest
from hypothesis import strategies as st

from fuzz import fuzz_webhooks


def test_fuzz_webhooks_briefly() -> None:
    fuzz_webhooks.check(examples=60)


def test_fuzz_main_reports_success(capsys: pytest.CaptureFixture[str]) -> None:
    assert fuzz_webhooks.main(["--examples", "5"]) == 0
    assert "ok   telnyx_envelope: 5 examples" in capsys.readouterr().out


def test_fuzz_main_reports_an_escaping_exception(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def buggy(data: bytes) -> None:
        if data:
            {}[data]

    monkeypatch.setattr(fuzz_webhooks, "TARGETS", {"buggy": (buggy, {"data": st.binary()})})
    assert fuzz_webhooks.main(["--examples", "50"]) == 1
    assert "FAIL buggy" in capsys.readouterr().err
