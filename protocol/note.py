"""C2SP signed notes: UTF-8 text followed by one signature line per key.

A signed note (c2sp.org/signed-note; the example from Go's
``golang.org/x/mod/sumdb/note``)::

    If you think cryptography is the answer to your problem,
    then you don't know what your problem is.

    — PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=

The text ends in a newline and may hold empty lines; the last empty line of
the note separates it from the signature lines.  Each signature line is an
em dash (U+2014), a space, the key name, a space and base64(4-byte key id ||
signature), then a newline.  The whole note is valid UTF-8 with no ASCII
control character other than newline.

Parsing is strict: what :func:`parse_note` accepts, :func:`format_note` writes
back byte for byte.  Verification follows the spec: signatures by unknown keys
are ignored (and kept), a failing signature by a known key rejects the whole
note, and a note no known key signed is rejected.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from dataclasses import dataclass

from protocol.errors import NoteError, SignatureError, preview
from protocol.keys import (
    KEY_ID_SIZE,
    Signer,
    VerifierKey,
    decode_base64,
    key_name_problem,
)

__all__ = [
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Note",
    "NoteSignature",
    "add_signatures",
    "format_note",
    "parse_note",
    "sign_note",
    "verify_note",
]

# A checkpoint note is a few hundred bytes; 16 KiB leaves room for many
# cosignatures while bounding what a peer can make us parse.
MAX_NOTE_SIZE = 16 * 1024
# C2SP signed-note: verifiers SHOULD limit the number of signatures but MUST
# accept at least 16; Go's sumdb/note rejects more than 100.
MAX_SIGNATURES = 100

_PREFIX = "\u2014 "  # em dash, space
# C2SP signed-note: no ASCII control characters other than newline.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")


def _text_problem(text: object) -> str | None:
    if not isinstance(text, str):
        return f"must be a string, got {type(text).__name__}"
    if not text.endswith("\n"):
        return "must end with a newline"
    match = _CONTROL.search(text)
    if match is not None:
        return f"control character U+{ord(match.group()):04X} at offset {match.start()}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"not valid utf-8 at offset {exc.start}"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteSignature:
    """One signature line: who signed (name and key id) and the signature bytes.

    The signature is opaque until a known key checks it: it may be another
    signature type (a witness cosignature, say) of any length.
    """

    name: str
    key_id: bytes
    signature: bytes

    def __post_init__(self) -> None:
        problem = key_name_problem(self.name)
        if problem is not None:
            raise NoteError(f"signature key name {problem}")
        if not isinstance(self.key_id, bytes) or len(self.key_id) != KEY_ID_SIZE:
            raise NoteError(f"signature key id: expected {KEY_ID_SIZE} bytes, got {preview(self.key_id)}")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise NoteError("signature: expected at least one byte")

    def line(self) -> str:
        """The signature line, without its final newline."""
        encoded = base64.b64encode(self.key_id + self.signature).decode("ascii")
        return f"{_PREFIX}{self.name} {encoded}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Note:
    """A note's text (ending in a newline) and all its signature lines, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        problem = _text_problem(self.text)
        if problem is not None:
            raise NoteError(f"note text: {problem}")
        if not isinstance(self.signatures, tuple) or not all(
            isinstance(s, NoteSignature) for s in self.signatures
        ):
            raise NoteError("note signatures: expected a tuple of NoteSignature")
        if not self.signatures:
            raise NoteError("note: expected at least one signature")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NoteError(
                f"note: {len(self.signatures)} signatures, at most {MAX_SIGNATURES} allowed"
            )


def format_note(note: Note) -> bytes:
    """The signed note's bytes: text, a blank line, one line per signature."""
    lines = "".join(sig.line() + "\n" for sig in note.signatures)
    return (note.text + "\n" + lines).encode("utf-8")


def parse_signature_line(line: str, where: str) -> NoteSignature:
    """One signature line, accepted only in the form :meth:`NoteSignature.line` writes.

    ``where`` names the line in error messages (notes and network files both carry them).
    """
    if not line.startswith(_PREFIX):
        raise NoteError(f"{where}: expected an em dash and a space, got {preview(line)}")
    name, space, encoded = line[len(_PREFIX) :].partition(" ")
    if not space:
        raise NoteError(
            f"{where}: expected '\u2014 <key name> <base64>' (a '<name> <base64 signature>' pair after "
            f"the dash), got {preview(line)}"
        )
    problem = key_name_problem(name)
    if problem is not None:
        raise NoteError(f"{where}: key name {problem}")
    raw = decode_base64(encoded)
    if raw is None:
        raise NoteError(f"{where}: signature must be canonical standard base64, got {preview(encoded)}")
    if len(raw) <= KEY_ID_SIZE:
        raise NoteError(
            f"{where}: signature has {len(raw)} bytes, expected a {KEY_ID_SIZE}-byte key id and a signature"
        )
    return NoteSignature(name=name, key_id=raw[:KEY_ID_SIZE], signature=raw[KEY_ID_SIZE:])


def parse_note(data: bytes, *, max_size: int = MAX_NOTE_SIZE) -> Note:
    """Split a signed note into text and signature lines; check no signature."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise NoteError(f"note: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_size:
        raise NoteError(f"note: {len(data)} bytes, at most {max_size} allowed")
    try:
        message = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NoteError(f"note: not valid utf-8 at byte {exc.start}") from exc
    match = _CONTROL.search(message)
    if match is not None:
        raise NoteError(
            f"note: control character U+{ord(match.group()):04X} at offset {match.start()}"
        )
    # C2SP signed-note: the text is separated from the signatures by the last
    # empty line; signature lines never hold "\n\n", so the last one is it.
    split = message.rfind("\n\n")
    if split < 0:
        raise NoteError("note: expected a blank line before the signature lines")
    text, block = message[: split + 1], message[split + 2 :]
    if not block:
        raise NoteError("note: expected at least one signature line")
    if not block.endswith("\n"):
        raise NoteError("note: the last signature line must end with a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note: {len(lines)} signatures, at most {MAX_SIGNATURES} allowed")
    signatures = tuple(parse_signature_line(line, f"note signature line {i + 1}") for i, line in enumerate(lines))
    return Note(text=text, signatures=signatures)


def _signature_for(text: bytes, signer: Signer) -> NoteSignature:
    if not isinstance(signer, Signer):
        raise NoteError(f"signer: expected a Signer, got {type(signer).__name__}")
    # C2SP signed-note: Ed25519 (RFC 8032) over the note text, including its
    # final newline but not the separating blank line.
    return NoteSignature(name=signer.name, key_id=signer.key_id, signature=signer.sign(text))


def _check_size(note: Note, max_size: int) -> bytes:
    data = format_note(note)
    if len(data) > max_size:
        raise NoteError(f"note: {len(data)} bytes once signed, at most {max_size} allowed")
    return data


def sign_note(text: str, signers: Sequence[Signer], *, max_size: int = MAX_NOTE_SIZE) -> bytes:
    """Sign ``text`` with every signer; the result is a signed note's bytes."""
    problem = _text_problem(text)
    if problem is not None:
        raise NoteError(f"note text: {problem}")
    if isinstance(signers, Signer) or not signers:
        raise NoteError("signers: expected a non-empty sequence of Signer")
    seen: set[tuple[str, bytes]] = set()
    for signer in signers:
        if isinstance(signer, Signer):
            ident = (signer.name, signer.key_id)
            if ident in seen:
                raise NoteError(f"signers: key {signer.name}+{signer.key_id.hex()} given twice")
            seen.add(ident)
    message = text.encode("utf-8")
    note = Note(text=text, signatures=tuple(_signature_for(message, s) for s in signers))
    return _check_size(note, max_size)


def add_signatures(
    data: bytes, signers: Sequence[Signer], *, max_size: int = MAX_NOTE_SIZE
) -> bytes:
    """Append the signers' signatures to an already signed note (cosigning).

    The note's existing signatures are not checked here: verify the note first
    (a cosigner vouches for what it verified).  As Go's ``note.Sign`` does, an
    existing signature by the same name and key id as a signer is replaced by
    the fresh one; every other line is kept, in order.
    """
    note = parse_note(data, max_size=max_size)
    if isinstance(signers, Signer) or not signers:
        raise NoteError("signers: expected a non-empty sequence of Signer")
    message = note.text.encode("utf-8")
    fresh = tuple(_signature_for(message, s) for s in signers)
    replaced = {(s.name, s.key_id) for s in fresh}
    if len(replaced) != len(fresh):
        raise NoteError("signers: the same key is given twice")
    kept = tuple(s for s in note.signatures if (s.name, s.key_id) not in replaced)
    return _check_size(Note(text=note.text, signatures=kept + fresh), max_size)


def verify_note(
    data: bytes, known: Sequence[VerifierKey], *, max_size: int = MAX_NOTE_SIZE
) -> tuple[Note, tuple[VerifierKey, ...]]:
    """Parse a signed note and check every signature made by a known key.

    Returns the note (with all its signature lines, unknown ones included) and
    the known keys whose signatures verified, in the order they appear.

    C2SP signed-note, "Signatures": verifiers MUST ignore signatures from
    unknown keys, even if they share a name or id (but not both) with a known
    key; a failing signature whose name and id match a known key rejects the
    whole note (SignatureError); so does a note no known key signed.
    """
    note = parse_note(data, max_size=max_size)
    index: dict[tuple[str, bytes], VerifierKey | None] = {}
    for vk in known:
        if not isinstance(vk, VerifierKey):
            raise SignatureError(f"known keys: expected VerifierKey, got {type(vk).__name__}")
        ident = (vk.name, vk.key_id)
        # Two different keys under one name and id cannot be told apart by a
        # signature line (Go: "ambiguous key"); remember that, fail if used.
        index[ident] = vk if index.get(ident, vk) == vk else None
    message = note.text.encode("utf-8")
    verified: list[VerifierKey] = []
    for sig in note.signatures:
        ident = (sig.name, sig.key_id)
        if ident not in index:
            continue
        vk = index[ident]
        label = f"{sig.name}+{sig.key_id.hex()}"
        if vk is None:
            raise SignatureError(f"known keys: two different keys named {label}")
        # RFC 8032 Ed25519 verification over the note text.
        if not vk.verify(message, sig.signature):
            raise SignatureError(f"note: invalid signature for key {label}")
        if vk not in verified:
            verified.append(vk)
    if not verified:
        names = ", ".join(sorted({f"{s.name}+{s.key_id.hex()}" for s in note.signatures}))
        raise SignatureError(f"note: no signature by a known key (signed by {preview(names, 120)})")
    return note, tuple(verified)
