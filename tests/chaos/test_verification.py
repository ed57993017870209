"""Which resends a chaos run puts down to a worker killed in the residual window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.chaos.verification import RESIDUAL_WINDOW, killed_after

ACCEPTED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_a_kill_just_after_the_provider_accepted_explains_the_resend() -> None:
    kills = [ACCEPTED - timedelta(seconds=5), ACCEPTED + timedelta(milliseconds=300)]
    assert killed_after(ACCEPTED, kills) == timedelta(milliseconds=300)


def test_the_nearest_later_kill_counts() -> None:
    kills = [ACCEPTED + timedelta(seconds=1), ACCEPTED + timedelta(milliseconds=40)]
    assert killed_after(ACCEPTED, kills) == timedelta(milliseconds=40)


def test_no_kill_after_the_acceptance_explains_nothing() -> None:
    assert killed_after(ACCEPTED, []) is None
    assert killed_after(ACCEPTED, [ACCEPTED - timedelta(milliseconds=1)]) is None


def test_a_kill_long_after_the_acceptance_explains_nothing() -> None:
    late = ACCEPTED + RESIDUAL_WINDOW + timedelta(milliseconds=1)
    assert killed_after(ACCEPTED, [late]) is None
    assert killed_after(ACCEPTED, [ACCEPTED + RESIDUAL_WINDOW]) == RESIDUAL_WINDOW
