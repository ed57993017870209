"""Replaying the journeys that are running against the code about to ship.

``aftercare replay`` (:mod:`engine.cli.replay`) selects journeys with a visibility
query (:mod:`.selection`), fetches their histories (:mod:`.fetching`), decrypts them
with the service's codec and customer key store (:mod:`.decoding`), replays them with
Temporal's Replayer against the workflows importable here (:mod:`.replaying`) and
reports every non-determinism (:mod:`.reporting`). ``--export`` writes the decoded
histories with personal data replaced by stable fakes (:mod:`.anonymising`,
:mod:`.exporting`) so a real journey can become a committed fixture.
"""
