"""The worker writes the workflow package's bytecode at start, so the sandbox's
per-instance imports read a .pyc instead of compiling the source each time."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine.sandbox import write_bytecode_beside, write_bytecode_for
from workflows.order_journey import OrderJourney


def test_bytecode_is_written_beside_the_source_even_when_python_would_not(
    tmp_path: Path,
) -> None:
    source = tmp_path / "some_workflow.py"
    source.write_text("VALUE = 1\n")
    cached = Path(importlib.util.cache_from_source(str(source)))
    assert not cached.exists()

    write_bytecode_beside(str(source))

    assert cached.is_file()
    assert cached.stat().st_size > 0


def test_the_journey_workflow_module_gets_its_bytecode() -> None:
    write_bytecode_for(OrderJourney)
    module = Path(__file__).resolve().parents[2] / "workflows" / "order_journey.py"
    assert Path(importlib.util.cache_from_source(str(module))).is_file()
