"""The event bus: order events in from RabbitMQ (`aftercare consume`)."""
