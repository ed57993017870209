"""Journeys in virtual time: the preview behind ``aftercare simulate``."""
