"""Metrics and traces: what every process tells Prometheus and OpenTelemetry."""
