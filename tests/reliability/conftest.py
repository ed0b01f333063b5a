"""Reliability tests reuse the service tests' real node on a free loopback port."""

from tests.services.conftest import node, start_node

__all__ = ["node", "start_node"]
