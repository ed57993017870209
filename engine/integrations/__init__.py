"""Orders in from shop platforms and event buses; journey events out to subscribers."""
