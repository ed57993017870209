"""The erased-customer marks of tests that build the customer stores themselves."""

from __future__ import annotations

from engine.platform.database.erasure_marks import ErasureMarks

# Keyed like a deployment's (ErasureMarks): with a secret of the tests' own.
TEST_MARKS = ErasureMarks("the tests' service secret")
