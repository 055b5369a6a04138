"""The agents' handlers, in process, on the worker's real services over in-memory ports."""

from __future__ import annotations

import pytest

from tests.support.fakes import MemoryWorld, memory_world


@pytest.fixture
def world() -> MemoryWorld:
    return memory_world()
