"""The one exception hierarchy of solidarity-node.

Everything the project raises on purpose derives from :class:`SolidarityError`.
Protocol errors describe bad bytes or values (they carry no I/O state); the
node adds its own subclasses (not found, busy, storage) in ``node.errors``.

Messages are lower case, name the field, say what was expected and what came,
and never echo unbounded input: use :func:`preview` for anything a peer sent.
"""

from __future__ import annotations


class SolidarityError(Exception):
    """Root of every error raised on purpose by this project.

    ``status`` is the HTTP status the API answers with when this error reaches
    the edge; ``title`` is the short, stable RFC 9457 problem title.
    """

    status = 400
    title = "bad request"


class ProtocolError(SolidarityError):
    """Bytes or values that break the protocol's rules."""

    title = "protocol error"


class EncodingError(ProtocolError):
    """Malformed or non-canonical MessagePack."""

    title = "malformed encoding"


class EntryError(ProtocolError):
    """A log entry or body that is well encoded but not a valid entry."""

    title = "invalid entry"


class SchemaError(ProtocolError):
    """A body that does not match its event type's schema."""

    title = "invalid body"


class KeyFormatError(ProtocolError):
    """A verifier key string or key file that cannot be read."""

    title = "invalid key"


class NoteError(ProtocolError):
    """A signed note or checkpoint whose text is malformed."""

    title = "malformed note"


class SignatureError(ProtocolError):
    """A signature that does not verify, or no signature by a known key."""

    title = "bad signature"


class ProofError(ProtocolError):
    """An inclusion or consistency proof that does not verify."""

    title = "invalid proof"


class TileError(ProtocolError):
    """A malformed tile path, tile, or entry bundle."""

    title = "invalid tile"


class EvidenceError(ProtocolError):
    """Evidence of equivocation that does not prove what it claims."""

    title = "invalid evidence"


class NetworkFileError(ProtocolError):
    """A network file (the network's trust root) that is malformed or inconsistent."""

    title = "invalid network file"


def preview(value: object, limit: int = 40) -> str:
    """A bounded, printable rendering of untrusted input for error messages."""
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
