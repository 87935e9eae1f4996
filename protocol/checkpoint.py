"""C2SP tlog checkpoints: a log's signed statement of its size and root hash.

The note text of a checkpoint (the example of c2sp.org/tlog-checkpoint)::

    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

and, signed by the log's key (whose name is the origin)::

    example.com/behind-the-sofa
    20852163
    CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

    — example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=

Line one is the origin (the log's name), line two the tree size in decimal
without leading zeros, line three the base64 RFC 6962/9162 root hash; any
further lines are opaque, non-empty extension lines.  A checkpoint signed by
the city for size N is the city's statement "my log has exactly these N
entries".
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass

from protocol.errors import NoteError, SignatureError, preview
from protocol.keys import Signer, VerifierKey, decode_base64
from protocol.note import sign_note, verify_note

__all__ = [
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "Checkpoint",
    "SignedCheckpoint",
    "format_checkpoint",
    "open_checkpoint",
    "parse_checkpoint",
    "sign_checkpoint",
]

HASH_SIZE = 32
# Tree sizes are uint64 in RFC 9162; we keep them to int64 like Go's tlog, so
# every size fits a signed 64-bit column.
MAX_TREE_SIZE = 2**63 - 1

# C2SP tlog-checkpoint: ASCII decimal, no leading zeroes (except "0").
_SIZE = re.compile(r"0|[1-9][0-9]{0,18}", re.ASCII)
_CONTROL = re.compile("[\x00-\x1f]")


def _line_problem(line: object) -> str | None:
    if not isinstance(line, str):
        return f"must be a string, got {type(line).__name__}"
    if not line:
        return "must not be empty"
    match = _CONTROL.search(line)
    if match is not None:
        return f"must not contain control characters, got U+{ord(match.group()):04X}"
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid utf-8"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class Checkpoint:
    """A tree head: the log's origin, its size, and its root hash."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problem = _line_problem(self.origin)
        if problem is not None:
            raise NoteError(f"checkpoint origin {problem}")
        if type(self.size) is not int or not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(
                f"checkpoint size: expected an integer 0..2**63-1, got {preview(self.size)}"
            )
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise NoteError(f"checkpoint root: expected {HASH_SIZE} bytes, got {preview(self.root)}")
        if not isinstance(self.extensions, tuple):
            raise NoteError("checkpoint extensions: expected a tuple of strings")
        for i, line in enumerate(self.extensions):
            problem = _line_problem(line)
            if problem is not None:
                raise NoteError(f"checkpoint extension line {i + 1} {problem}")


def format_checkpoint(cp: Checkpoint) -> str:
    """The checkpoint's note text (origin, size, base64 root, extensions)."""
    root = base64.b64encode(cp.root).decode("ascii")
    return "".join(line + "\n" for line in (cp.origin, str(cp.size), root, *cp.extensions))


def parse_checkpoint(text: str) -> Checkpoint:
    """Read checkpoint note text, accepting only what format_checkpoint writes."""
    if not isinstance(text, str):
        raise NoteError(f"checkpoint: expected a string, got {type(text).__name__}")
    if not text.endswith("\n"):
        raise NoteError("checkpoint: text must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError(f"checkpoint: expected at least 3 lines, got {len(lines)}")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise NoteError("checkpoint origin must not be empty")
    if _SIZE.fullmatch(size_text) is None:
        raise NoteError(
            f"checkpoint size: expected a decimal number without leading zeros, got {preview(size_text)}"
        )
    size = int(size_text)
    if size > MAX_TREE_SIZE:
        raise NoteError(f"checkpoint size: at most 2**63-1, got {size_text}")
    root = decode_base64(root_text)
    if root is None or len(root) != HASH_SIZE:
        raise NoteError(
            f"checkpoint root: expected canonical base64 of {HASH_SIZE} bytes, got {preview(root_text)}"
        )
    return Checkpoint(origin=origin, size=size, root=root, extensions=tuple(extensions))


def sign_checkpoint(cp: Checkpoint, signer: Signer) -> bytes:
    """The checkpoint as a note signed by the log's own key.

    The key name must equal the origin (tlog-checkpoint: the log's key name
    SHOULD match the origin; we require it, so a key signs for one log only).
    """
    if not isinstance(signer, Signer):
        raise NoteError(f"signer: expected a Signer, got {type(signer).__name__}")
    if signer.name != cp.origin:
        raise NoteError(
            f"checkpoint origin {preview(cp.origin)} does not match the signer's key name "
            f"{preview(signer.name)}"
        )
    return sign_note(format_checkpoint(cp), [signer])


@dataclass(frozen=True, slots=True, kw_only=True)
class SignedCheckpoint:
    """A verified checkpoint and the exact signed note it came in.

    The note bytes are kept as received: they are what the log signed, what
    we serve on, and what goes into evidence of equivocation.
    """

    checkpoint: Checkpoint
    note: bytes


def open_checkpoint(data: bytes, verifier: VerifierKey) -> SignedCheckpoint:
    """Verify a signed checkpoint with the log's key and read it.

    Other signatures (witness cosignatures) are ignored and kept in ``note``.
    Raises SignatureError unless the log's key signed and its name is the
    checkpoint's origin, NoteError if the note or its text is malformed.
    """
    if not isinstance(verifier, VerifierKey):
        raise SignatureError(f"verifier: expected a VerifierKey, got {type(verifier).__name__}")
    # The text means nothing before the signature is checked, so verify first.
    note, _ = verify_note(data, [verifier])
    checkpoint = parse_checkpoint(note.text)
    if checkpoint.origin != verifier.name:
        raise SignatureError(
            f"checkpoint origin {preview(checkpoint.origin)} is not the name of its key "
            f"{preview(verifier.name)}"
        )
    return SignedCheckpoint(checkpoint=checkpoint, note=bytes(data))
