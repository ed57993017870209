"""What a plan change does before it ships: :mod:`.diff` compares two plan files
(``aftercare plans diff``); the backtest that runs recorded journeys through a new
plan lives in :mod:`engine.simulation.backtest` (``aftercare plans check``)."""
