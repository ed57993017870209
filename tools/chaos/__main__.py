"""``python -m tools.chaos``: run the chaos scenarios, print what each injected and
checked, exit non-zero when any failed."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import replace

from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter

from engine.platform.logging import configure_logging
from tools.chaos.config import ChaosConfig
from tools.chaos.registry import SCENARIOS
from tools.chaos.report import print_result, print_summary
from tools.chaos.scenario import ScenarioResult


async def run_all(names: Sequence[str], config: ChaosConfig) -> list[ScenarioResult]:
    results = []
    for name in names:
        result = await SCENARIOS[name](config)
        print_result(result)
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.chaos", description=__doc__)
    parser.add_argument("--journeys", type=int, default=None, help="journeys in flight")
    parser.add_argument(
        "--short", action="store_true", help="fault windows of seconds (as in make test)"
    )
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default all"
    )
    args = parser.parse_args(argv)
    config = ChaosConfig.short() if args.short else ChaosConfig()
    if args.journeys is not None:
        if args.journeys < 1:
            parser.error("--journeys must be at least 1")
        config = replace(config, journeys=args.journeys)
    # Errors only: every scenario provokes warnings by design (calls the API answers
    # UNAVAILABLE while the server is down...) and counts them in its report.
    configure_logging("ERROR", "console")
    # The SDK core warns about every call it repeats while the server is down; the
    # scenarios expect exactly that, and report it themselves.
    Runtime.set_default(
        Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=TelemetryFilter(core_level="ERROR", other_level="ERROR")
                )
            )
        )
    )
    results = asyncio.run(run_all(args.scenario or list(SCENARIOS), config))
    print_summary(results)
    return 0 if all(result.passed for result in results) else 1


if __name__ == "__main__":
    sys.exit(main())
