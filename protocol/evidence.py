"""Evidence that a log signed two histories that cannot both be true.

A log's key signs "my log has exactly these N entries".  Two such statements
contradict each other, and so prove the log equivocated, in two ways:

- **same-size**: two checkpoints for the same size with different roots;
- **inconsistent**: a consistency path (RFC 9162 2.1.4.2, given in full) that
  rebuilds the newer checkpoint's root exactly while rebuilding, from the same
  hashes, an older root different from the one the log signed for that size.

Evidence is self-contained: anyone holding the log's verifier key can check
it with :func:`check_evidence`, with no access to the log.  On the wire it is
a canonical MessagePack map (``protocol.encoding``)::

    {"kind": "inconsistent",
     "newer": <signed checkpoint note bytes>,
     "older": <signed checkpoint note bytes>,
     "path": [<32-byte hash>, ...]}

A consistency proof that simply fails to verify proves nothing: anyone can
send a bad proof.  So :func:`compare_checkpoints` has three outcomes:
:class:`Consistent`, :class:`Inconsistent` (with evidence), and
:class:`InvalidProof`.

When the older size is a power of two, an RFC 9162 proof leaves out the older
tree's root (the verifier is expected to hold it), so a proof alone cannot show
which older root the newer tree really contains.  The comparing node then
passes that subtree hash, read from its own copy of the newer tree, as
``old_subtree``, and the evidence carries it as the first hash of its path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from protocol import encoding
from protocol.checkpoint import SignedCheckpoint, open_checkpoint
from protocol.errors import EvidenceError, ProofError, ProtocolError, preview
from protocol.keys import VerifierKey
from protocol.merkle import check_consistency, consistency_roots
from protocol.note import MAX_NOTE_SIZE

__all__ = [
    "KIND_INCONSISTENT",
    "KIND_SAME_SIZE",
    "KINDS",
    "MAX_EVIDENCE_SIZE",
    "MAX_PATH_LENGTH",
    "Comparison",
    "Consistent",
    "Evidence",
    "Inconsistent",
    "InvalidProof",
    "check_evidence",
    "compare_checkpoints",
    "decode_evidence",
    "encode_evidence",
]

KIND_SAME_SIZE = "same-size"
KIND_INCONSISTENT = "inconsistent"
KINDS = (KIND_SAME_SIZE, KIND_INCONSISTENT)
HASH_SIZE = 32
# A full RFC 9162 consistency path for 64-bit sizes has at most 65 hashes;
# anything longer cannot be a path, and refusing it bounds the decoder.
MAX_PATH_LENGTH = 128
# Two notes at their size limit plus a path: fits the decoder's default limit.
MAX_EVIDENCE_SIZE = 65535

_FIELDS = frozenset({"kind", "older", "newer", "path"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Evidence:
    """Two signed checkpoint notes (as signed) and, for "inconsistent", a full path.

    The structure is checked here; whether it proves anything is
    :func:`check_evidence`'s job, with the log's key.
    """

    kind: str
    older: bytes
    newer: bytes
    path: tuple[bytes, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise EvidenceError(f"evidence kind: expected one of {', '.join(KINDS)}, got {preview(self.kind)}")
        for name in ("older", "newer"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or not value:
                raise EvidenceError(f"evidence {name}: expected a signed checkpoint note as bytes")
            if len(value) > MAX_NOTE_SIZE:
                raise EvidenceError(f"evidence {name}: {len(value)} bytes, at most {MAX_NOTE_SIZE} allowed")
        if not isinstance(self.path, tuple):
            raise EvidenceError("evidence path: expected a tuple of hashes")
        if len(self.path) > MAX_PATH_LENGTH:
            raise EvidenceError(f"evidence path: {len(self.path)} hashes, at most {MAX_PATH_LENGTH} allowed")
        for i, h in enumerate(self.path):
            if not isinstance(h, bytes) or len(h) != HASH_SIZE:
                raise EvidenceError(f"evidence path hash {i}: expected {HASH_SIZE} bytes, got {preview(h)}")
        if self.kind == KIND_SAME_SIZE and self.path:
            raise EvidenceError(f"evidence path: same-size evidence has no path, got {len(self.path)} hashes")
        if self.kind == KIND_INCONSISTENT and not self.path:
            raise EvidenceError("evidence path: inconsistent evidence needs a consistency path")


def encode_evidence(ev: Evidence) -> bytes:
    """The canonical MessagePack encoding of the evidence."""
    return encoding.encode(
        {"kind": ev.kind, "older": ev.older, "newer": ev.newer, "path": list(ev.path)}
    )


def decode_evidence(data: bytes) -> Evidence:
    """Read evidence written by :func:`encode_evidence` (no signature is checked).

    Raises EncodingError for bytes that are not canonical MessagePack, and
    EvidenceError for a map that is not evidence.
    """
    value = encoding.decode(data, max_size=MAX_EVIDENCE_SIZE)
    if not isinstance(value, dict):
        raise EvidenceError(f"evidence: expected a map, got {type(value).__name__}")
    if value.keys() != _FIELDS:
        missing = sorted(_FIELDS - value.keys())
        unknown = sorted(value.keys() - _FIELDS)
        raise EvidenceError(f"evidence: missing fields {missing}, unknown fields {preview(unknown)}")
    kind, older, newer, path = value["kind"], value["older"], value["newer"], value["path"]
    if not isinstance(kind, str):
        raise EvidenceError(f"evidence kind: expected a string, got {type(kind).__name__}")
    for name, field in (("older", older), ("newer", newer)):
        if not isinstance(field, bytes):
            raise EvidenceError(f"evidence {name}: expected bytes, got {type(field).__name__}")
    if not isinstance(path, list):
        raise EvidenceError(f"evidence path: expected an array, got {type(path).__name__}")
    return Evidence(kind=kind, older=older, newer=newer, path=tuple(path))


def _opened(note: bytes, verifier: VerifierKey, which: str) -> SignedCheckpoint:
    try:
        return open_checkpoint(note, verifier)
    except ProtocolError as exc:
        raise EvidenceError(f"evidence {which} checkpoint: {exc}") from exc


def check_evidence(ev: Evidence, verifier: VerifierKey) -> None:
    """Check that the evidence proves the log of ``verifier`` equivocated.

    Returns None if it does; raises EvidenceError saying why not otherwise.
    """
    if not isinstance(ev, Evidence):
        raise EvidenceError(f"evidence: expected Evidence, got {type(ev).__name__}")
    if not isinstance(verifier, VerifierKey):
        raise EvidenceError(f"verifier: expected a VerifierKey, got {type(verifier).__name__}")
    # Both statements must be the log's own: signed by its key, for its origin.
    older = _opened(ev.older, verifier, "older").checkpoint
    newer = _opened(ev.newer, verifier, "newer").checkpoint
    if older.origin != newer.origin:  # open_checkpoint ties both to verifier.name
        raise EvidenceError("evidence: the checkpoints are for different logs")
    if ev.kind == KIND_SAME_SIZE:
        if older.size != newer.size:
            raise EvidenceError(
                f"same-size evidence: sizes {older.size} and {newer.size}, expected equal sizes"
            )
        if older.root == newer.root:
            raise EvidenceError(f"same-size evidence: both checkpoints have the same root for size {older.size}")
        return
    if not 0 < older.size < newer.size:
        raise EvidenceError(
            f"inconsistent evidence: sizes {older.size} and {newer.size}, expected 0 < older < newer"
        )
    try:
        # RFC 9162 2.1.4.2 with the full path: the roots these hashes rebuild.
        old_root, new_root = consistency_roots(older.size, newer.size, ev.path)
    except ProofError as exc:
        raise EvidenceError(f"inconsistent evidence: {exc}") from exc
    if new_root != newer.root:
        raise EvidenceError(
            f"inconsistent evidence: the path does not rebuild the newer root (size {newer.size})"
        )
    if old_root == older.root:
        raise EvidenceError(
            f"inconsistent evidence: the path rebuilds the older root too (size {older.size}): consistent"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Consistent:
    """The newer checkpoint extends the older one (or they are the same tree)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Inconsistent:
    """The log signed two incompatible trees; ``evidence`` proves it to anyone."""

    evidence: Evidence


@dataclass(frozen=True, slots=True, kw_only=True)
class InvalidProof:
    """The proof neither shows consistency nor proves equivocation: it proves nothing."""

    reason: str


Comparison = Consistent | Inconsistent | InvalidProof


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


def compare_checkpoints(
    a: SignedCheckpoint,
    b: SignedCheckpoint,
    proof: Sequence[bytes],
    *,
    old_subtree: bytes | None = None,
) -> Comparison:
    """Compare two checkpoints of one log, with an RFC 9162 proof between their sizes.

    ``a`` and ``b`` come in either order; ``proof`` is PROOF(smaller size,
    larger tree) as :func:`protocol.merkle.prove_consistency` makes it.  For
    equal sizes the roots decide and the proof is not used; an older size of
    0 is consistent with anything.

    ``old_subtree`` matters only when the smaller size is a power of two: it
    is the hash of the first ``smaller size`` leaves of the larger tree, which
    the caller reads from its own copy of that tree.  Without it, such a proof
    can show consistency but never equivocation.

    The checkpoints must already be verified (``open_checkpoint``) with the
    same log key; comparing checkpoints of different origins raises
    EvidenceError.
    """
    for cp in (a, b):
        if not isinstance(cp, SignedCheckpoint):
            raise EvidenceError(f"compare: expected SignedCheckpoint, got {type(cp).__name__}")
    if a.checkpoint.origin != b.checkpoint.origin:
        raise EvidenceError(
            f"compare: checkpoints of different logs {preview(a.checkpoint.origin)} "
            f"and {preview(b.checkpoint.origin)}"
        )
    older, newer = (a, b) if a.checkpoint.size <= b.checkpoint.size else (b, a)
    m, n = older.checkpoint.size, newer.checkpoint.size
    old_root, new_root = older.checkpoint.root, newer.checkpoint.root
    if m == n:
        if old_root == new_root:
            return Consistent()
        return Inconsistent(evidence=Evidence(kind=KIND_SAME_SIZE, older=older.note, newer=newer.note))
    if m == 0:
        return Consistent()
    try:
        proof = list(proof)
    except TypeError:
        return InvalidProof(reason=f"consistency proof: expected a sequence of hashes, got {type(proof).__name__}")
    try:
        check_consistency(old_size=m, new_size=n, old_root=old_root, new_root=new_root, proof=proof)
    except ProofError as exc:
        failure = str(exc)
    else:
        return Consistent()
    # The proof does not link the two roots. It proves equivocation only if its
    # hashes rebuild the newer root exactly while giving another older root.
    if _is_power_of_two(m):
        if old_subtree is None:
            return InvalidProof(
                reason=f"{failure} (older size {m} is a power of two: no old subtree hash was given)"
            )
        path = [old_subtree, *proof]
    else:
        path = proof
    try:
        rebuilt_old, rebuilt_new = consistency_roots(m, n, path)
    except ProofError as exc:
        return InvalidProof(reason=str(exc))
    if rebuilt_new != new_root:
        return InvalidProof(reason=failure)
    if rebuilt_old == old_root:  # cannot happen if check_consistency agrees; be safe
        return Consistent()
    evidence = Evidence(kind=KIND_INCONSISTENT, older=older.note, newer=newer.note, path=tuple(path))
    return Inconsistent(evidence=evidence)
