"""Errors the running node raises on purpose, below the protocol's root error.

Each carries the HTTP status the API answers with, so the one error
middleware in ``node.app`` can turn it into an RFC 9457 problem response.
"""

from __future__ import annotations

from protocol.errors import SolidarityError


class NodeError(SolidarityError):
    """Root of the node's own errors."""

    status = 500
    title = "node error"


class ConfigError(NodeError):
    """A setting that is missing, malformed or outside its allowed values."""

    status = 500
    title = "configuration error"


class NotFound(NodeError):
    """What was asked for does not exist (yet) on this node."""

    status = 404
    title = "not found"


class BadRequest(NodeError):
    """A request whose path, parameters or body are not acceptable."""

    status = 400
    title = "bad request"


class Busy(NodeError):
    """Backpressure: the node is alive but cannot take this now; retry later."""

    status = 503
    title = "busy"
    retry_after = 5


class StorageError(NodeError):
    """The database is missing, corrupted, locked too long or of an unknown format."""

    status = 500
    title = "storage error"


class AuthoringRefused(NodeError):
    """Appending to our own log would be unsafe or the input is not acceptable."""

    status = 409
    title = "authoring refused"


class PeerRefused(NodeError):
    """A peer's request that this node will not act on (not a member, other network)."""

    status = 403
    title = "refused"


class Conflict(NodeError):
    """The request conflicts with what this node holds (e.g. another network file)."""

    status = 409
    title = "conflict"
