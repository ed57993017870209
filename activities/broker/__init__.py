"""Outbound journey events published to the configured RabbitMQ exchange."""
