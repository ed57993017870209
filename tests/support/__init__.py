"""Shared test helpers: real servers on free ports, databases, waiting for conditions."""
