"""Which resends a chaos run puts down to a worker killed in the residual window, and
how the SMS the ledger records are held against those the provider accepted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from activities.sms.twilio_sender import status_callback_for
from engine.chaos.verification import RESIDUAL_WINDOW, Verification, compare_texts, killed_after
from engine.devstack.twilio_fake import FakeMessage

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


def text(sid: str, key: str | None, accepted_at: datetime) -> FakeMessage:
    callback = None if key is None else status_callback_for("https://care.example/s", key)
    return FakeMessage(
        sid=sid,
        account_sid="AC" + "0" * 32,
        to="+4915112345678",
        from_="+15005550006",
        body="Thanks for your order",
        messaging_service_sid=None,
        status_callback=callback,
        media=[],
        params={},
        num_segments=1,
        date_created=accepted_at,
    )


def test_a_text_sent_again_after_a_kill_is_a_resend_whichever_copy_is_recorded() -> None:
    kill = ACCEPTED + timedelta(milliseconds=80)
    first = text("SM1", "j-1/order_confirmation/0/sms", ACCEPTED)
    again = text("SM2", "j-1/order_confirmation/0/sms", kill + timedelta(seconds=40))
    for recorded_sid in ("SM1", "SM2"):  # by the first copy's report, or by the retry
        result = Verification(journeys=1)

        compare_texts(
            {"j-1/order_confirmation/0/sms": recorded_sid}, [first, again], [kill], result
        )

        assert result.passed, result.problems
        assert (result.received, result.duplicates, result.resent_after_kill) == (2, 1, 1)


def test_a_text_sent_twice_without_a_kill_is_a_problem() -> None:
    key = "j-1/order_confirmation/0/sms"
    copies = [text("SM1", key, ACCEPTED), text("SM2", key, ACCEPTED + timedelta(seconds=3))]
    result = Verification(journeys=1)

    compare_texts({key: "SM2"}, copies, [], result)

    assert not result.passed
    assert result.problems == ["1 SMS sent twice: SM1"]


def test_texts_the_ledger_and_the_provider_disagree_on_are_problems() -> None:
    result = Verification(journeys=2)

    compare_texts(
        {"j-1/thank_you/0/sms": "SM9", "j-2/thank_you/0/sms": "SM3"},
        [
            text("SM1", "j-1/thank_you/0/sms", ACCEPTED),
            text("SM3", "j-2/thank_you/0/sms", ACCEPTED),
        ],
        [],
        result,
    )

    assert result.problems == [
        "1 SMS the ledger calls sent the provider never accepted: SM9",
        "1 SMS accepted that the ledger does not record as sent: SM1",
    ]
    assert (result.missing, result.duplicates) == (1, 1)
