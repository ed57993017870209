"""Structured logging: one configuration for every process of the service.

Lines are JSON when stderr is not a terminal (so log shippers can parse them) and
coloured key=value pairs when a person is watching.

No line carries an email address or a phone number: provider errors are redacted
where they become our exceptions, and as the last line of defence every record is
redacted again on its way out (``engine.platform.redaction``), whoever logged it
(our code, the Temporal SDK, the Twilio SDK, any library), its exception chain
included: a ``RedactPersonalData`` filter on the handler, and structlog processors
that redact the event and the rendered line.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, Literal

import structlog

from engine.platform.redaction import redact


def configure_logging(
    level: str = "INFO", fmt: Literal["auto", "json", "console"] = "auto"
) -> None:
    use_json = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # Route the standard library's records (Temporal SDK, grpc, aiosmtpd, alembic)
    # through the same renderer so every line of the process has one shape.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            # After the traceback became text, before rendering: JSON escapes
            # non-ASCII, which would hide an address like jörg@bücher.example
            # from a pass over the rendered line.
            redact_event,
            redacting(renderer),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    handler.addFilter(RedactPersonalData())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # aiosmtpd and the SQL driver log every exchange at INFO: keep them for debugging only.
    for noisy in ("mail.log", "aiosqlite", "sqlalchemy.engine", "alembic.runtime.migration"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


def redact_event(
    logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: every string in the event (nested in dicts, lists and
    tuples too) with email addresses and phone numbers replaced."""
    for key, value in event_dict.items():
        event_dict[key] = _redacted(value)
    return event_dict


def redacting(renderer: structlog.types.Processor) -> structlog.types.Processor:
    """``renderer``, with the line it renders redacted: values that are not strings
    (an object's repr, say) only become text there."""

    def render(logger: Any, method_name: str, event_dict: Any) -> Any:
        rendered = renderer(logger, method_name, event_dict)
        return redact(rendered) if isinstance(rendered, str) else rendered

    return render


class RedactPersonalData(logging.Filter):
    """Redacts a stdlib record in place (message, arguments, traceback, stack), so
    whatever formatter the handler has writes no address or number. Never drops a
    record."""

    _tracebacks = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):
            # A structlog event (wrap_for_formatter): its processors render it.
            record.msg = _redacted(record.msg)
        else:
            record.msg = redact(_message_of(record))
            record.args = None
        if record.exc_info and not record.exc_text:
            # Formatters print exc_text when it is set; structlog's formats the
            # exception itself and redacts it in redact_event.
            record.exc_text = self._tracebacks.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _message_of(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except (TypeError, ValueError, KeyError):
        # Arguments that do not fit the message: logging would report the error
        # with the arguments on stderr, past every formatter. Keep both, redacted.
        return f"{record.msg} {record.args!r}"


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_redacted(item) for item in value)
    return value
