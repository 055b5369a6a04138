"""Errors of the chain watcher, the Tron node client and deposit-address derivation."""

from __future__ import annotations


class ChainError(Exception):
    """Root of every error raised by ``app.adapters.tron``."""


class ChainSettingsError(ChainError, ValueError):
    """A chain setting's environment variable is missing or invalid; the message names it."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class NodeUnavailable(ChainError):
    """The Tron node did not answer usefully after every retry; nothing was skipped, retry later."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"Tron node unavailable on {endpoint}: {reason}")
        self.endpoint = endpoint
        self.reason = reason


class TokenContractMismatch(ChainError):
    """The configured USDT contract is not a 6-decimal token here (check TRON_USDT_CONTRACT)."""


class ReorgBeyondWindow(ChainError):
    """A reorganisation reaches below every block the watcher kept; an operator must intervene."""


class WatcherRefusesToStart(ChainError):
    """No cursor, but the platform watched before: starting at the head would skip payments.

    The message names the watchers seen and what to run (``checkout chain start``); the watcher
    reads nothing until then, and asks the store again at every poll.
    """


class CursorConflict(ChainError):
    """Another watcher moved the persisted cursor: two watchers are active on the same store."""


class InvalidXpub(ChainError, ValueError):
    """The extended key is not a TRON account-level extended public key."""


class TransactionRefused(ChainError):
    """The node would not build or run this transaction (e.g. the balance is not sufficient).

    Not retried: asking again gets the same answer until the chain changes. ``code`` is java-tron's
    (``CONTRACT_VALIDATE_ERROR``, ``CONTRACT_EXE_ERROR``, ``OTHER_ERROR``…), ``message`` its text.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"the Tron node refused the transaction: {code}: {message}")
        self.code = code
        self.message = message
