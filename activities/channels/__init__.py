"""Delivery channels: each turns one journey message into one provider call."""
