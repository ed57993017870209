"""The last line of defence: whatever a log record says (structlog events, the Temporal
SDK's and other libraries' stdlib records, their exception chains), the lines the
service writes carry no email address and no phone number."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from typing import Literal

import pytest
import structlog

from engine.platform.logging import RedactPersonalData, configure_logging, get_logger

ADDRESS = "Jane.Doe+orders@example.com"
NUMBER = "+4915112345678"
NATIONAL = "0151 12345678"


def assert_clean(text: str) -> None:
    for personal in (ADDRESS, ADDRESS.lower(), "Jane.Doe", NUMBER, NUMBER[1:], "12345678"):
        assert personal not in text, f"{personal!r} in the output"


@pytest.fixture
def configured() -> Iterator[io.StringIO]:
    """A buffer to log into; the logging configuration as it was, afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog_config = structlog.get_config()
    buffer = io.StringIO()
    yield buffer
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**structlog_config)


def configure_into(buffer: io.StringIO, fmt: Literal["json", "console"]) -> None:
    # configure_logging binds its handler to the sys.stderr of the moment.
    real_stderr, sys.stderr = sys.stderr, buffer
    try:
        configure_logging("DEBUG", fmt)
    finally:
        sys.stderr = real_stderr


def provider_failure() -> RuntimeError:
    """An exception chain as a provider client leaves it: the cause quotes the address."""
    try:
        try:
            raise ValueError(f"550 5.1.1 <{ADDRESS}>: Recipient address rejected")
        except ValueError as refused:
            raise RuntimeError(f"Twilio: The 'To' number {NUMBER} is not valid") from refused
    except RuntimeError as err:
        return err


def log_everything() -> None:
    failure = provider_failure()
    log = get_logger("tests.redaction")
    log.info(f"refused {ADDRESS}", to=NUMBER, reply={"text": f"550 <{ADDRESS}>", "n": [NATIONAL]})
    log.error("send failed", exc_info=failure)
    # The SDK's own loggers: stdlib records with %-arguments and exception chains.
    sdk = logging.getLogger("temporalio.activity")
    sdk.warning("Completing activity as failed (%s)", ADDRESS, exc_info=failure)
    logging.LoggerAdapter(sdk, {"x": 1}).info("heartbeat for %s", NUMBER)
    logging.getLogger("twilio.http_client").info("POST Request: /Messages.json?To=%2B4915112345678")
    # A record whose arguments do not fit its message still must not leak them.
    logging.getLogger("tests.odd").info("no placeholder", ADDRESS)


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_every_line_the_service_writes_is_redacted(
    configured: io.StringIO, fmt: Literal["json", "console"]
) -> None:
    configure_into(configured, fmt)
    log_everything()
    written = configured.getvalue()
    assert_clean(written)
    # The facts stay: what happened, the codes, the exception types of the chain.
    for kept in ("refused <email>", "550 5.1.1", "ValueError", "RuntimeError", "<phone>"):
        assert kept in written
    assert "Completing activity as failed (<email>)" in written
    if fmt == "json":
        lines = [json.loads(line) for line in written.splitlines() if line.startswith("{")]
        assert len(lines) >= 6


def test_the_filter_makes_records_safe_for_any_formatter() -> None:
    # A handler someone adds with a plain formatter gets redacted records too,
    # tracebacks included, when it carries the filter.
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactPersonalData())
    logger = logging.getLogger("tests.redaction.filter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("for %s and %s", ADDRESS, NATIONAL, exc_info=provider_failure())
        logger.info("stack", stack_info=True)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    written = buffer.getvalue()
    assert_clean(written)
    assert "WARNING for <email> and <phone>" in written
    assert "550 5.1.1 <<email>>" in written
    assert "RuntimeError: Twilio: The 'To' number <phone> is not valid" in written
