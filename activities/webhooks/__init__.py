"""Outbound journey events as signed webhooks (Standard Webhooks)."""
