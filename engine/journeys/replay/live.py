"""Replaying the journeys running on the configured Temporal server."""

from __future__ import annotations

from functools import partial

from temporalio.converter import PayloadCodec

from engine.journeys.replay.fetching import fetch_history, select_runs
from engine.journeys.replay.reporting import ReplayReport
from engine.journeys.replay.routine import HistoryLoader, ReplayOptions, run_replay
from engine.journeys.replay.selection import Selection
from engine.platform.codec.payloads import DATA_CONVERTER
from engine.platform.codec.runtime import codec_for, customer_keys_for
from engine.platform.settings import Settings
from engine.platform.temporal.connection import connect


async def replay_running(
    settings: Settings, selection: Selection, options: ReplayOptions, *, seed: int | None = None
) -> ReplayReport:
    """The selected journeys fetched, decrypted with the deployment's keys and
    replayed against the workflows importable here."""
    keys = customer_keys_for(settings)
    try:
        codec: PayloadCodec = codec_for(settings, keys)
        # Payloads are decoded by the codec above, journey by journey, so that an erased
        # customer's history is told apart: the client itself converts nothing.
        client = await connect(settings, data_converter=DATA_CONVERTER)
        runs = await select_runs(client, selection, seed=seed)
        loaders: list[HistoryLoader] = [partial(fetch_history, client, run) for run in runs]
        return await run_replay(loaders, codec, options)
    finally:
        await keys.aclose()
