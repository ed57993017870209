"""The dev stack's web push, so ``aftercare run`` sends to browsers' subscriptions as a
deployment does: a VAPID key pair made on first use and kept under ``state_dir``
(``vapid-private.pem``, owner-only; the public key a page subscribes with in
``vapid-public-key.txt``), and the local fake push service
(``engine.devstack.webpush_fake``), which keeps every message under
``state_dir/webpush/``.

The fake's subscriptions (their keys, so it can decrypt) and its port are kept in
``state_dir/webpush-fake.json``: a subscription registered before a restart keeps
working after it, its endpoint on the same port while that port is free.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
from collections.abc import AsyncIterator
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import SecretStr

from engine.devstack.webpush_fake import WebPushFake
from engine.platform.files import read_or_create
from engine.platform.http_server import HttpServerError, serve_http
from engine.platform.logging import get_logger
from engine.platform.settings import Settings
from engine.platform.vapid import load_private_key, new_private_key_pem, public_key_of

log = get_logger(__name__)

VAPID_KEY_FILE_NAME = "vapid-private.pem"
VAPID_PUBLIC_KEY_FILE_NAME = "vapid-public-key.txt"
FAKE_STATE_FILE_NAME = "webpush-fake.json"
MESSAGES_FOLDER = "webpush"


def with_dev_vapid(settings: Settings) -> Settings:
    """``settings`` with a VAPID key and subject unless configured."""
    update: dict[str, object] = {}
    if settings.webpush_vapid_private_key is None:
        pem = read_or_create(settings.state_dir / VAPID_KEY_FILE_NAME, new_private_key_pem)
        public_key = public_key_of(load_private_key(pem))
        (settings.state_dir / VAPID_PUBLIC_KEY_FILE_NAME).write_text(
            public_key + "\n", encoding="utf-8"
        )
        update["webpush_vapid_private_key"] = SecretStr(pem)
    if settings.webpush_vapid_subject is None:
        address = parseaddr(settings.sender_address)[1] or "care@localhost"
        update["webpush_vapid_subject"] = f"mailto:{address}"
    return settings.model_copy(update=update) if update else settings


@contextlib.asynccontextmanager
async def serve_dev_webpush_fake(
    state_dir: Path, host: str = "127.0.0.1"
) -> AsyncIterator[WebPushFake]:
    """The fake push service with the subscriptions it made on earlier runs."""
    state_file = state_dir / FAKE_STATE_FILE_NAME
    saved = _load(state_file)
    fake = WebPushFake(state_dir / MESSAGES_FOLDER)
    async with contextlib.AsyncExitStack() as stack:
        port = int(saved.get("port") or 0)
        try:
            served = await stack.enter_async_context(serve_http(fake.app, host, port))
        except HttpServerError:
            log.warning(
                "web push fake: its earlier port is taken; subscriptions registered "
                "before now point at nothing (register new ones)",
                port=port,
            )
            served = await stack.enter_async_context(serve_http(fake.app, host, 0))
        fake._served_at(served.host, served.port)
        for entry in saved.get("subscriptions", []):
            _restore(fake, entry)
        fake.on_change = lambda: _save(state_file, fake, served.port)
        _save(state_file, fake, served.port)
        yield fake


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        log.warning("web push fake: unreadable state, starting afresh", path=str(path))
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _restore(fake: WebPushFake, entry: dict[str, Any]) -> None:
    key = serialization.load_pem_private_key(entry["private_key"].encode("ascii"), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        return
    fake.adopt(
        entry["id"],
        key,
        base64.urlsafe_b64decode(entry["auth_secret"]),
        entry.get("application_server_key"),
        expired=bool(entry.get("expired")),
    )


def _save(path: Path, fake: WebPushFake, port: int) -> None:
    entries = [
        {
            "id": subscription.subscription_id,
            "private_key": subscription.private_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode("ascii"),
            "auth_secret": base64.urlsafe_b64encode(subscription.auth_secret).decode("ascii"),
            "application_server_key": subscription.application_server_key,
            "expired": subscription.expired,
        }
        for subscription in fake.subscriptions.values()
    ]
    partial = path.with_suffix(".part")
    # The browsers' private keys: the owner's alone, like the dev stack's other keys.
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump({"port": port, "subscriptions": entries}, file, indent=2)
    os.replace(partial, path)
