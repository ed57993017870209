"""Signed link tokens, their URLs, the secret that signs them, and List-Unsubscribe."""

from __future__ import annotations

import email.policy
import stat
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from pydantic import SecretStr

from activities.email.message import build_email
from activities.email.rendering import RenderedEmail
from engine.platform.links import (
    ExpiredLink,
    InvalidLink,
    LinkClaims,
    LinkPurpose,
    LinkSigner,
    feedback_url,
    preferences_url,
    unsubscribe_url,
)
from engine.platform.links.secret import load_or_create_secret
from engine.platform.settings import Settings

SECRET = "test-secret-that-is-long-enough-to-mean-something"
SIGNED_AT = datetime(2025, 7, 1, 12, 0, 0, tzinfo=UTC)
MONTH = timedelta(days=30)


class FrozenClock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def signer_at(now: datetime) -> tuple[LinkSigner, FrozenClock]:
    clock = FrozenClock(now)
    return LinkSigner(SECRET, clock=clock), clock


# --- tokens --------------------------------------------------------------------------


def test_a_token_round_trips_its_claims() -> None:
    signer, _ = signer_at(SIGNED_AT)
    token = signer.sign(LinkPurpose.UNSUBSCRIBE, "cust-42", "order-1001")

    claims = signer.verify(token, LinkPurpose.UNSUBSCRIBE, MONTH)

    assert claims == LinkClaims(
        customer_id="cust-42",
        journey_id="order-1001",
        purpose=LinkPurpose.UNSUBSCRIBE,
        issued_at=SIGNED_AT,
    )
    assert claims.issued_at.utcoffset() == timedelta(0)


def test_tokens_with_the_real_clock_round_trip() -> None:
    signer = LinkSigner(SECRET)
    before = datetime.now(UTC).replace(microsecond=0)
    token = signer.sign("feedback", "cust-1", "order-1")
    claims = signer.verify(token, "feedback", timedelta(minutes=5))
    assert (claims.customer_id, claims.journey_id, claims.purpose) == (
        "cust-1",
        "order-1",
        LinkPurpose.FEEDBACK,
    )
    assert before <= claims.issued_at <= datetime.now(UTC)


def test_tokens_are_url_safe_and_differ_per_purpose_and_person() -> None:
    signer, _ = signer_at(SIGNED_AT)
    tokens = {
        signer.sign(purpose, customer, journey)
        for purpose in LinkPurpose
        for customer in ("cust-1", "cust-2")
        for journey in ("order-1", "order-2")
    }
    assert len(tokens) == 12
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert all(set(token) <= allowed for token in tokens)


def test_a_token_for_another_purpose_is_invalid() -> None:
    signer, _ = signer_at(SIGNED_AT)
    feedback = signer.sign(LinkPurpose.FEEDBACK, "cust-42", "order-1001")

    for purpose in (LinkPurpose.UNSUBSCRIBE, LinkPurpose.PREFERENCES):
        with pytest.raises(InvalidLink) as raised:
            signer.verify(feedback, purpose, MONTH)
        assert not isinstance(raised.value, ExpiredLink)


def test_an_altered_token_is_invalid() -> None:
    signer, _ = signer_at(SIGNED_AT)
    token = signer.sign(LinkPurpose.UNSUBSCRIBE, "cust-42", "order-1001")
    payload, timestamp, signature = token.split(".")
    other = signer.sign(LinkPurpose.UNSUBSCRIBE, "cust-43", "order-1001")

    def flip(text: str, index: int) -> str:
        return text[:index] + ("A" if text[index] != "A" else "B") + text[index + 1 :]

    altered = [
        f"{flip(payload, 3)}.{timestamp}.{signature}",  # someone else's data
        f"{payload}.{flip(timestamp, 1)}.{signature}",  # a younger token
        f"{payload}.{timestamp}.{flip(signature, 5)}",  # a guessed signature
        f"{other.split('.')[0]}.{timestamp}.{signature}",  # another customer's payload
        f"{payload}.{timestamp}",  # no signature
        token[:-1],
        token + "x",
        "",
        "not-a-token",
        "a.b.c",
    ]
    for candidate in altered:
        with pytest.raises(InvalidLink) as raised:
            signer.verify(candidate, LinkPurpose.UNSUBSCRIBE, MONTH)
        assert not isinstance(raised.value, ExpiredLink), candidate


def test_a_token_signed_with_another_secret_is_invalid() -> None:
    forged = LinkSigner("some-other-secret", clock=FrozenClock(SIGNED_AT)).sign(
        LinkPurpose.UNSUBSCRIBE, "cust-42", "order-1001"
    )
    signer, _ = signer_at(SIGNED_AT)
    with pytest.raises(InvalidLink):
        signer.verify(forged, LinkPurpose.UNSUBSCRIBE, MONTH)


def test_a_token_older_than_max_age_is_expired() -> None:
    signer, clock = signer_at(SIGNED_AT)
    token = signer.sign(LinkPurpose.PREFERENCES, "cust-42", "order-1001")

    clock.now = SIGNED_AT + MONTH  # exactly max_age old: still fine
    assert signer.verify(token, LinkPurpose.PREFERENCES, MONTH).customer_id == "cust-42"

    clock.now = SIGNED_AT + MONTH + timedelta(seconds=1)
    with pytest.raises(ExpiredLink) as raised:
        signer.verify(token, LinkPurpose.PREFERENCES, MONTH)
    assert raised.value.issued_at == SIGNED_AT
    # A longer max_age still takes it.
    assert signer.verify(token, LinkPurpose.PREFERENCES, 2 * MONTH).journey_id == "order-1001"


def test_max_age_zero_accepts_only_the_second_of_signing() -> None:
    signer, clock = signer_at(SIGNED_AT)
    token = signer.sign(LinkPurpose.FEEDBACK, "cust-42", "order-1001")

    assert signer.verify(token, LinkPurpose.FEEDBACK, timedelta(0)).issued_at == SIGNED_AT
    clock.now = SIGNED_AT + timedelta(seconds=1)
    with pytest.raises(ExpiredLink):
        signer.verify(token, LinkPurpose.FEEDBACK, timedelta(0))


def test_expired_is_a_kind_of_invalid() -> None:
    signer, clock = signer_at(SIGNED_AT)
    token = signer.sign(LinkPurpose.UNSUBSCRIBE, "cust-42", "order-1001")
    clock.now = SIGNED_AT + timedelta(days=365)
    with pytest.raises(InvalidLink):
        signer.verify(token, LinkPurpose.UNSUBSCRIBE, MONTH)


def test_an_expired_token_for_another_purpose_is_invalid_not_expired() -> None:
    signer, clock = signer_at(SIGNED_AT)
    token = signer.sign(LinkPurpose.FEEDBACK, "cust-42", "order-1001")
    clock.now = SIGNED_AT + timedelta(days=365)
    with pytest.raises(InvalidLink) as raised:
        signer.verify(token, LinkPurpose.UNSUBSCRIBE, MONTH)
    assert not isinstance(raised.value, ExpiredLink)


def test_unknown_purposes_and_negative_ages_are_mistakes() -> None:
    signer, _ = signer_at(SIGNED_AT)
    with pytest.raises(ValueError, match="not a valid LinkPurpose"):
        signer.sign("delete", "cust-42", "order-1001")
    token = signer.sign("unsubscribe", "cust-42", "order-1001")
    with pytest.raises(ValueError, match="not a valid LinkPurpose"):
        signer.verify(token, "delete", MONTH)
    with pytest.raises(ValueError, match="max_age"):
        signer.verify(token, "unsubscribe", timedelta(seconds=-1))
    with pytest.raises(ValueError, match="secret"):
        LinkSigner("")


# --- URLs ----------------------------------------------------------------------------


def test_link_urls() -> None:
    base = "https://care.shop.example"
    assert unsubscribe_url(base, "tok.en-1_x") == "https://care.shop.example/u/tok.en-1_x"
    assert preferences_url(base + "/", "tok") == "https://care.shop.example/p/tok"
    assert feedback_url(base, "tok") == "https://care.shop.example/f/tok"
    assert feedback_url(base, "tok", score=9) == "https://care.shop.example/f/tok?score=9"
    assert feedback_url(base, "tok", score=0) == "https://care.shop.example/f/tok?score=0"
    # Under a path prefix (behind a proxy).
    assert unsubscribe_url("https://shop.example/care/", "tok") == (
        "https://shop.example/care/u/tok"
    )
    # A stray character cannot leave the token's path segment.
    assert unsubscribe_url(base, "a/b?c") == "https://care.shop.example/u/a%2Fb%3Fc"
    with pytest.raises(ValueError, match="token"):
        unsubscribe_url(base, "")


def test_a_signed_token_in_a_url_verifies() -> None:
    signer, _ = signer_at(SIGNED_AT)
    url = unsubscribe_url("https://care.shop.example", signer.sign("unsubscribe", "c-1", "j-1"))
    token = url.rsplit("/u/", 1)[1]
    assert signer.verify(token, "unsubscribe", MONTH).customer_id == "c-1"


# --- the secret ----------------------------------------------------------------------


# A configured secret key (at least 32 characters, as every configured one must be).
CONFIGURED = "configured-secret-key-0123456789abcdef"


def settings_in(state_dir: Path, secret_key: str | None = None) -> Settings:
    return Settings(
        _env_file=None,
        state_dir=state_dir,
        secret_key=SecretStr(secret_key) if secret_key is not None else None,
    )


def test_a_configured_secret_is_used_and_no_file_made(tmp_path: Path) -> None:
    assert load_or_create_secret(settings_in(tmp_path, CONFIGURED)) == CONFIGURED
    assert not (tmp_path / "secret.key").exists()


def test_without_a_configured_secret_one_is_made_once(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    settings = settings_in(state_dir)

    first = load_or_create_secret(settings)
    path = state_dir / "secret.key"

    assert len(first) >= 64  # token_urlsafe(48)
    assert path.read_text().strip() == first
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(settings) == first
    assert load_or_create_secret(settings_in(state_dir)) == first
    assert [p.name for p in state_dir.iterdir()] == ["secret.key"]  # no temporary files left
    # Another state directory gets another secret.
    assert load_or_create_secret(settings_in(tmp_path / "other")) != first


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    settings = settings_in(tmp_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        secrets = set(pool.map(lambda _: load_or_create_secret(settings), range(16)))
    assert len(secrets) == 1
    assert secrets == {(tmp_path / "secret.key").read_text().strip()}


def test_an_empty_secret_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("\n")
    with pytest.raises(RuntimeError, match="empty"):
        load_or_create_secret(settings_in(tmp_path))


# --- List-Unsubscribe in emails --------------------------------------------------------

RENDERED = RenderedEmail(subject="Your order", preheader="", text="Hello", html="<p>Hello</p>")


def email_with(list_unsubscribe_url: str | None = None) -> bytes:
    kwargs = {} if list_unsubscribe_url is None else {"list_unsubscribe_url": list_unsubscribe_url}
    message = build_email(
        RENDERED,
        sender="Aftercare Shop <care@shop.example>",
        recipient_email="jane@example.test",
        recipient_name="Jane",
        message_id="<abc@shop.example>",
        journey_id="order-1001",
        step="order_confirmation",
        **kwargs,
    )
    # As aiosmtplib puts it on the wire.
    return message.as_bytes(policy=email.policy.SMTP)


def test_without_an_unsubscribe_url_there_are_no_list_headers() -> None:
    parsed = message_from_bytes(email_with(), policy=email.policy.default)
    assert parsed["List-Unsubscribe"] is None
    assert parsed["List-Unsubscribe-Post"] is None
    assert parsed["X-Aftercare-Step"] == "order_confirmation"


def test_one_click_unsubscribe_headers() -> None:
    signer, _ = signer_at(SIGNED_AT)
    url = unsubscribe_url(
        "https://care.shop.example", signer.sign("unsubscribe", "cust-42", "order-1001")
    )
    assert len(url) > 78  # longer than a header line may be before folding

    raw = email_with(url)
    parsed = message_from_bytes(raw, policy=email.policy.default)

    assert parsed["List-Unsubscribe"] == f"<{url}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # On the wire the URL stands on one line as it is: no folding inside it and no
    # RFC 2047 encoded words, which mail clients would not decode in this header.
    assert f"\r\nList-Unsubscribe: <{url}>\r\n".encode() in raw
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in raw
    assert b"=?utf-8?" not in raw
    # The rest of the message is what it always was.
    assert parsed["Message-ID"] == "<abc@shop.example>"
    assert parsed.get_body(("plain",)) is not None


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "https://shop.example/u/x\r\nBcc: victim@example.test",
        "https://shop.example/u/x y",
        "https://shop.example/u/x>",
        "https://shop.example/u/ä",
        "https://shop.example/u/" + "x" * 1000,
    ],
)
def test_unusable_unsubscribe_urls_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="List-Unsubscribe"):
        email_with(bad)
