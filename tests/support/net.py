"""Free ports for servers the tests start (tools.ports: outside the ephemeral range)."""

from __future__ import annotations

from tools.ports import free_port

__all__ = ["free_port"]
