"""The operations API: pausing sending, and bulk operations on journeys."""
