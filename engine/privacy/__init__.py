"""Privacy operations on a customer's data: erasure (GDPR / CCPA)."""
