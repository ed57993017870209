"""The embedded dev stack behind ``make run``: every part on one machine."""
