"""Shopify webhooks: orders, cancellations, fulfillments and refunds in."""
