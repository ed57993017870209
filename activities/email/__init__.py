"""Email content: brand, locale formatting and template rendering (no sending here)."""
