"""The dev stack's web push: a VAPID key made once under the state folder and kept,
and a fake push service whose subscriptions outlive a restart of `aftercare run`."""

from __future__ import annotations

import stat
from pathlib import Path

from activities.push.fcm import PushNotification
from activities.push.webpush import WebPushConfig, WebPushSender
from engine.devstack.dev_webpush import (
    VAPID_KEY_FILE_NAME,
    VAPID_PUBLIC_KEY_FILE_NAME,
    serve_dev_webpush_fake,
    with_dev_vapid,
)
from engine.messaging.web_push_keys import WebPushKeys
from engine.platform.settings import Settings


def test_the_dev_key_is_made_once_kept_private_and_its_public_half_published(
    tmp_path: Path,
) -> None:
    settings = Settings(_env_file=None, state_dir=tmp_path)
    first = with_dev_vapid(settings)
    again = with_dev_vapid(settings)
    assert first.webpush_vapid_private_key is not None
    assert again.webpush_vapid_private_key is not None
    assert (
        first.webpush_vapid_private_key.get_secret_value()
        == again.webpush_vapid_private_key.get_secret_value()
    )
    assert first.webpush_vapid_subject == "mailto:care@shop.example"
    assert stat.S_IMODE((tmp_path / VAPID_KEY_FILE_NAME).stat().st_mode) == 0o600
    config = WebPushConfig.from_settings(first)
    assert config is not None
    public = (tmp_path / VAPID_PUBLIC_KEY_FILE_NAME).read_text().strip()
    assert public == WebPushSender(config).public_key


async def test_a_subscription_outlives_a_restart_of_the_fake(tmp_path: Path) -> None:
    settings = with_dev_vapid(Settings(_env_file=None, state_dir=tmp_path))
    config = WebPushConfig.from_settings(settings)
    assert config is not None
    sender = WebPushSender(config)
    note = PushNotification(title="Shipped", body="Order 1 is on its way.", link="")
    try:
        async with serve_dev_webpush_fake(tmp_path) as fake:
            subscription = fake.subscribe(application_server_key=sender.public_key)
            endpoint = subscription.endpoint
            keys = WebPushKeys(p256dh=subscription.p256dh, auth=subscription.auth)
        async with serve_dev_webpush_fake(tmp_path) as restarted:
            await sender.send(endpoint, keys, note, urgent=False)
            [received] = restarted.to(endpoint)
    finally:
        await sender.aclose()
    assert received.payload["title"] == "Shipped"
    assert received.path is not None
    assert received.path.parent == tmp_path / "webpush"
