"""Run the webhook fuzz harness briefly so CI exercises it."""

from __future__ import annotations

from fuzz import fuzz_webhooks


def test_fuzz_webhooks_briefly() -> None:
    fuzz_webhooks.check(examples=60)


def test_fuzz_main_reports_success(capsys: object) -> None:
    assert fuzz_webhooks.main(["--examples", "5"]) == 0
