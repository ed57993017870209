"""Scenario 5: the worker's PostgreSQL connections are killed (pg_terminate_backend)
under load, every second or so, while sends claim and record ledger rows.

Runs on a throwaway database of the local server (created and dropped by the run);
the worker process and the API use it for the ledger and everything else.
"""

from __future__ import annotations

import asyncio

import psycopg

from tools.chaos.config import ChaosConfig
from tools.chaos.harness import ChaosRun
from tools.chaos.scenario import Injection, ScenarioResult, run_scenario
from tools.throwaway_database import throwaway_database

NAME = "postgres_kill"


async def terminate_connections(admin: psycopg.AsyncConnection[tuple[int]], name: str) -> int:
    """pg_terminate_backend for every connection to database ``name``; how many."""
    cursor = await admin.execute(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        (name,),
    )
    row = await cursor.fetchone()
    return int(row[0]) if row else 0


def killer(database: str) -> Injection:
    async def inject(run: ChaosRun) -> int:
        config = run.config
        await run.traffic()
        rounds = killed = 0
        window_ends = run.elapsed() + config.postgres_kill_window_seconds
        async with await psycopg.AsyncConnection.connect(
            config.postgres_admin_dsn, autocommit=True
        ) as admin:
            run.note(
                f"PostgreSQL: terminating every connection to {database} every "
                f"{config.postgres_kill_every_seconds:g} s"
            )
            while run.elapsed() < window_ends:
                killed += await terminate_connections(admin, database)
                rounds += 1
                await asyncio.sleep(config.postgres_kill_every_seconds)
        run.note(f"PostgreSQL: {rounds} rounds, {killed} connections terminated; left alone now")
        return killed

    return inject


async def run(config: ChaosConfig) -> ScenarioResult:
    async with throwaway_database(config.postgres_admin_dsn, "chaos") as (name, url):
        return await run_scenario(
            NAME,
            f"PostgreSQL connections terminated every {config.postgres_kill_every_seconds:g} s "
            f"for {config.postgres_kill_window_seconds:g} s",
            config,
            killer(name),
            database_url=url,
        )
