"""How big a chaos run is and how long its faults last: the full run (``make chaos``)
and the short one inside ``make test`` differ only in these numbers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# The local PostgreSQL server (trust auth) the postgres_kill scenario runs on.
DEFAULT_POSTGRES_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class ChaosConfig:
    journeys: int = 500
    # API calls the order system has in flight at once (journey starts and events).
    in_flight: int = 50
    # Seconds between a journey's start and each of its events (shipped,
    # out_for_delivery, delivered), so journeys are mid-way while faults happen.
    event_pace_seconds: float = 1.0
    # How long every journey may take to finish after the faults end.
    settle_seconds: float = 900.0
    # Where the worker processes' logs go (kept after the run for diagnosis).
    log_dir: Path = Path(".aftercare/chaos")
    postgres_admin_dsn: str = DEFAULT_POSTGRES_ADMIN_DSN

    # worker_kill: SIGKILL the worker after it has run this long (a random point in
    # the range), start a new one at once; this many times.
    kill_after_seconds: tuple[float, float] = (2.0, 6.0)
    worker_kills: int = 12
    # server_restart: how many stops, and how long the server stays down each time.
    server_restarts: int = 2
    server_down_seconds: float = 10.0
    # smtp_outage: connections refused, then 4xx answers, then healthy.
    smtp_refuse_seconds: float = 30.0
    smtp_defer_seconds: float = 20.0
    # twilio_faults: bursts of 500 / 429 (Retry-After) answers with healthy gaps.
    twilio_bursts: int = 6
    twilio_burst_seconds: float = 4.0
    twilio_gap_seconds: float = 3.0
    twilio_retry_after_seconds: int = 2
    # postgres_kill: terminate every connection to the database this often, this long.
    postgres_kill_every_seconds: float = 1.0
    postgres_kill_window_seconds: float = 40.0
    # event_storm: this many clients calling RecordEvent at once, for this long.
    event_clients: int = 200
    event_storm_seconds: float = 60.0

    @classmethod
    def short(cls, journeys: int = 30) -> ChaosConfig:
        """The version inside ``make test``: few journeys, fault windows of seconds
        (change more with ``dataclasses.replace``)."""
        return cls(
            journeys=journeys,
            in_flight=20,
            settle_seconds=150.0,
            kill_after_seconds=(1.0, 3.0),
            worker_kills=2,
            server_restarts=2,
            server_down_seconds=2.0,
            smtp_refuse_seconds=4.0,
            smtp_defer_seconds=3.0,
            twilio_bursts=2,
            twilio_burst_seconds=2.0,
            twilio_gap_seconds=1.0,
            twilio_retry_after_seconds=1,
            postgres_kill_every_seconds=0.5,
            postgres_kill_window_seconds=6.0,
            event_clients=20,
            event_storm_seconds=6.0,
        )
