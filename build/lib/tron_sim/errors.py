"""Errors of the Tron node simulator."""

from __future__ import annotations


class SimError(Exception):
    """Root of every error the simulator raises."""


class BadAddress(SimError):
    """A string is not a Tron address."""


class BadAmount(SimError):
    """An amount on the control API is malformed."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


class BadRequest(SimError):
    """A control-API request names a bad field."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


class BroadcastRejected(SimError):
    """java-tron refuses a transaction at broadcast: carries its `code` and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class MalformedTransaction(SimError):
    """A transaction's JSON cannot be packed into the protobuf java-tron would build."""
