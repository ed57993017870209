"""Outbound journey events: subscriptions managed through the API and CLI, each
served by its own WebhookDispatch workflow."""
