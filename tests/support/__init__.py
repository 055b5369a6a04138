"""Helpers shared by the test tiers: ports, processes, waiting."""
