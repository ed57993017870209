"""Chaos runs: journeys in flight while parts of the deployment fail, then proof that
every journey ended where it should and every due message went out exactly once.

    make chaos                                   # 500 journeys, every scenario
    .venv/bin/python -m tools.chaos --journeys 40 --short --scenario worker_kill

One module per scenario (``worker_kill``, ``server_restart``, ``smtp_outage``,
``twilio_faults``, ``postgres_kill``, ``event_storm``); ``harness`` builds the stack
each scenario runs on (dev server, worker *processes*, gRPC API, mail sink, Twilio
fake), ``driving`` plays the order system, ``verification`` compares the message
ledger with what the mail sink and the Twilio fake received.
"""
