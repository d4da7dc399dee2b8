"""Domain errors. The HTTP edge maps each to its answer, in one table per API."""

from __future__ import annotations


class BridgeError(Exception):
    """Base of every error the bridge raises on purpose."""


class ConfigurationError(BridgeError):
    """A setting is missing or invalid; an operator must fix the deployment."""


class InvalidRequest(BridgeError):
    """The caller sent something we cannot act on (answered with 400)."""


class Unauthenticated(BridgeError):
    """The caller could not prove who it is, or the proof is stale (answered with 401)."""


class SecretNotConfigured(Unauthenticated):
    """No secret to check the caller's proof against: every call is refused until one is set."""


class NothingToCapture(BridgeError):
    """A proven call that asks for no capture (a vendor's ping, an event on another topic).

    Answered `200 {"ignored": "<reason>"}` with nothing stored: the sender did nothing wrong,
    and a 4xx would make it retry or disable the webhook. Raised only after verification.
    A handshake the vendor expects an answer to (Front's challenge) gives that `answer` instead.
    """

    def __init__(self, reason: str, *, answer: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.answer = answer


class UnknownHelpdesk(BridgeError):
    """The webhook path names a helpdesk the bridge has no adapter for (answered with 404)."""


class HelpdeskNotConfigured(BridgeError):
    """A capture asked for on a helpdesk whose notes could not be written (answered with 400).

    Refused before anything is stored or sent: its capture could never reach the ticket.
    """


class UnknownProvider(BridgeError):
    """A capture provider name the bridge has no module for."""


class PayloadTooLarge(BridgeError):
    """The request body is larger than any genuine webhook (answered with 413)."""


class StoreUnavailable(BridgeError):
    """DynamoDB could not take the request; the sender should retry (answered with 503)."""


class InvalidCursor(InvalidRequest):
    """A list cursor that is malformed, or belongs to another query (answered with 400)."""


class IdempotencyConflict(BridgeError):
    """An idempotency key used again with another body (answered with 409)."""
