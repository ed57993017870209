"""Delivery of a built email to the configured SMTP server, with failures classified.

Permanent failures (the server refuses the recipient or the content with a 5xx)
are raised as :class:`PermanentSmtpError`; everything else (4xx, refused or
dropped connections, timeouts) as :class:`TransientSmtpError`, which the activity
lets Temporal retry with backoff.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

import aiosmtplib

from engine.settings import Settings


class SmtpError(Exception):
    pass


class PermanentSmtpError(SmtpError):
    pass


class TransientSmtpError(SmtpError):
    pass


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    security: str = "none"  # "none" | "starttls" | "tls"
    username: str | None = None
    password: str | None = None
    timeout_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SmtpConfig:
        return cls(
            host=settings.smtp_host,
            port=settings.smtp_port,
            security=settings.smtp_security,
            username=settings.smtp_user,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            timeout_seconds=settings.smtp_timeout_seconds,
        )


class SmtpMailer:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    async def send(self, message: EmailMessage) -> str:
        """Hand the message to the server; returns the server's acceptance reply."""
        config = self._config
        try:
            _, reply = await aiosmtplib.send(
                message,
                hostname=config.host,
                port=config.port,
                username=config.username,
                password=config.password,
                use_tls=config.security == "tls",
                start_tls=config.security == "starttls",
                timeout=config.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as err:
            refusals = err.recipients
            if refusals and all(r.code >= 500 for r in refusals):
                detail = "; ".join(f"{r.code} {r.message}" for r in refusals)
                raise PermanentSmtpError(f"recipient refused: {detail}") from err
            raise TransientSmtpError(f"recipient deferred: {err}") from err
        except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as err:
            if err.code >= 500:
                raise PermanentSmtpError(f"{err.code} {err.message}") from err
            raise TransientSmtpError(f"{err.code} {err.message}") from err
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as err:
            # Sender refused, auth failures and 4xx answers are ours or temporary:
            # retrying after the operator fixes them must still deliver.
            raise TransientSmtpError(f"{type(err).__name__}: {err}") from err
        return reply
