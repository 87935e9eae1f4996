"""C2SP signed notes (protocol/note.py)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import errors
from protocol.errors import NoteError, ProtocolError, SignatureError
from protocol.keys import Signer, VerifierKey, parse_verifier_key, signer_from_seed
from protocol.note import (
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    Note,
    NoteSignature,
    add_signatures,
    format_note,
    parse_note,
    sign_note,
    verify_note,
)

VECTORS = Path(__file__).parent.parent / "vectors" / "note"
NOTE_VECTORS = sorted(VECTORS.glob("*.json"))

EM = "\u2014"
PETER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
# golang.org/x/mod sumdb/note/note_test.go (BSD-3-Clause, The Go Authors).
PETER_SEED = base64.b64decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")[1:]
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT
    + "\n"
    + EM
    + " PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
).encode()


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def note_bytes(case: dict) -> bytes:
    return bytes.fromhex(case["note_hex"]) if "note_hex" in case else case["note"].encode("utf-8")


@pytest.fixture(scope="module")
def peter() -> Signer:
    return signer_from_seed("PeterNeumann", PETER_SEED)


@pytest.fixture(scope="module")
def city() -> Signer:
    return signer_from_seed("solidarity.example/city/lyon", bytes([1]) * 32)


@pytest.fixture(scope="module")
def witness() -> Signer:
    return signer_from_seed("witness.example/w1", bytes([2]) * 32)


# --- known answers -------------------------------------------------------------


@pytest.mark.parametrize("path", NOTE_VECTORS, ids=[p.stem for p in NOTE_VECTORS])
def test_note_vector(path: Path) -> None:
    case = load(path)
    assert case["source"]
    data = note_bytes(case)
    known = [parse_verifier_key(k) for k in case["keys"]]
    if case["result"] == "verified":
        note, verified = verify_note(data, known)
        assert note.text == case["text"]
        assert [str(vk) for vk in verified] == case["verified"]
        assert len(note.signatures) == case["signatures"]
        # Every signature line, unknown ones included, is kept byte for byte.
        assert format_note(note) == data
        assert parse_note(data) == note
    else:
        error = getattr(errors, case["result"])
        with pytest.raises(error):
            verify_note(data, known)


def test_sign_go_note_known_answer(peter: Signer) -> None:
    assert sign_note(GO_TEXT, [peter]) == GO_NOTE
    assert str(peter.verifier) == PETER


def test_note_fields() -> None:
    note = parse_note(GO_NOTE)
    assert note.text == GO_TEXT
    (sig,) = note.signatures
    assert sig.name == "PeterNeumann"
    assert sig.key_id == bytes.fromhex("c74f20a3")
    assert len(sig.signature) == 64


# --- bit flips -------------------------------------------------------------------


def test_every_signature_bit_flip_fails() -> None:
    vk = parse_verifier_key(PETER)
    sig = parse_note(GO_NOTE).signatures[0]
    for bit in range(len(sig.signature) * 8):
        bad = bytearray(sig.signature)
        bad[bit // 8] ^= 1 << (bit % 8)
        note = Note(text=GO_TEXT, signatures=(NoteSignature(name=sig.name, key_id=sig.key_id, signature=bytes(bad)),))
        with pytest.raises(SignatureError, match="invalid signature for key PeterNeumann"):
            verify_note(format_note(note), [vk])


def test_every_key_id_bit_flip_makes_the_key_unknown() -> None:
    vk = parse_verifier_key(PETER)
    sig = parse_note(GO_NOTE).signatures[0]
    for bit in range(32):
        bad = bytearray(sig.key_id)
        bad[bit // 8] ^= 1 << (bit % 8)
        note = Note(text=GO_TEXT, signatures=(NoteSignature(name=sig.name, key_id=bytes(bad), signature=sig.signature),))
        with pytest.raises(SignatureError, match="no signature by a known key"):
            verify_note(format_note(note), [vk])


def test_every_text_bit_flip_fails() -> None:
    vk = parse_verifier_key(PETER)
    text = GO_TEXT.encode()
    rest = GO_NOTE[len(text) :]
    for bit in range(len(text) * 8):
        bad = bytearray(text)
        bad[bit // 8] ^= 1 << (bit % 8)
        # Either the text is no longer a valid note text, or the signature fails.
        with pytest.raises((NoteError, SignatureError)):
            verify_note(bytes(bad) + rest, [vk])


# --- verification rules ------------------------------------------------------------


def test_unknown_signatures_are_ignored_and_kept(city: Signer, witness: Signer) -> None:
    data = sign_note("hello\n", [witness, city])
    note, verified = verify_note(data, [city.verifier])
    assert verified == (city.verifier,)
    assert [s.name for s in note.signatures] == [witness.name, city.name]
    assert format_note(note) == data


def test_same_name_other_key_is_unknown(city: Signer) -> None:
    impostor = signer_from_seed(city.name, bytes([9]) * 32)
    assert impostor.key_id != city.key_id
    data = sign_note("hello\n", [impostor])
    with pytest.raises(SignatureError, match="no signature by a known key"):
        verify_note(data, [city.verifier])
    # With the real key's signature too, the impostor's line is just ignored.
    note, verified = verify_note(add_signatures(data, [city]), [city.verifier])
    assert verified == (city.verifier,)
    assert len(note.signatures) == 2


def test_same_key_id_other_name_is_unknown(city: Signer) -> None:
    good = parse_note(sign_note("hello\n", [city])).signatures[0]
    renamed = NoteSignature(name="other.example", key_id=good.key_id, signature=good.signature)
    data = format_note(Note(text="hello\n", signatures=(renamed,)))
    with pytest.raises(SignatureError, match="no signature by a known key"):
        verify_note(data, [city.verifier])


def test_a_bad_known_signature_rejects_the_whole_note(city: Signer, witness: Signer) -> None:
    good = sign_note("hello\n", [city, witness])
    note = parse_note(good)
    forged = NoteSignature(name=witness.name, key_id=witness.key_id, signature=bytes(64))
    data = format_note(Note(text=note.text, signatures=(note.signatures[0], forged)))
    # Known only as the city: the forged witness line is someone else's business.
    verify_note(data, [city.verifier])
    with pytest.raises(SignatureError, match=f"invalid signature for key {witness.name}"):
        verify_note(data, [city.verifier, witness.verifier])


def test_repeated_known_signatures_are_all_checked(city: Signer) -> None:
    good = parse_note(sign_note("hello\n", [city])).signatures[0]
    bad = NoteSignature(name=good.name, key_id=good.key_id, signature=bytes(64))
    twice = format_note(Note(text="hello\n", signatures=(good, good)))
    note, verified = verify_note(twice, [city.verifier])
    assert verified == (city.verifier,)
    assert len(note.signatures) == 2
    with pytest.raises(SignatureError):
        verify_note(format_note(Note(text="hello\n", signatures=(good, bad))), [city.verifier])


def test_other_signature_types_of_a_known_key_fail(city: Signer) -> None:
    # A signature line under a known name and id must verify as Ed25519:
    # a 4-byte or 100-byte "signature" by that key rejects the note.
    for size in (1, 63, 65, 100):
        odd = NoteSignature(name=city.name, key_id=city.key_id, signature=bytes(size))
        with pytest.raises(SignatureError):
            verify_note(format_note(Note(text="hello\n", signatures=(odd,))), [city.verifier])


def test_duplicate_known_keys_are_fine(city: Signer) -> None:
    _, verified = verify_note(sign_note("hello\n", [city]), [city.verifier, city.verifier])
    assert verified == (city.verifier,)


def test_ambiguous_known_keys(city: Signer) -> None:
    # Two different keys under one name and id (a 32-bit collision, forged here).
    other = signer_from_seed(city.name, bytes([7]) * 32).verifier
    object.__setattr__(other, "key_id", city.key_id)
    with pytest.raises(SignatureError, match="two different keys"):
        verify_note(sign_note("hello\n", [city]), [city.verifier, other])


def test_known_keys_must_be_verifier_keys(city: Signer) -> None:
    with pytest.raises(SignatureError, match="VerifierKey"):
        verify_note(sign_note("hello\n", [city]), [str(city.verifier)])  # type: ignore[list-item]


# --- text rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["\n", "a\n", "a\n\nb\n", "a\n\n", "\n\n\n", "— looks like a signature line\n", "städte 🌍\n", "x" * 1000 + "\n"],
    ids=["newline-only", "one-line", "empty-line-inside", "ends-with-empty-line", "only-empty-lines", "dash", "unicode", "long"],
)
def test_text_forms_round_trip(city: Signer, text: str) -> None:
    data = sign_note(text, [city])
    note, _ = verify_note(data, [city.verifier])
    assert note.text == text
    assert format_note(note) == data


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "newline"),
        ("no newline", "newline"),
        ("tab\there\n", "U+0009"),
        ("carriage\r\n", "U+000D"),
        ("nul\x00\n", "U+0000"),
        ("lone \ud800 surrogate\n", "utf-8"),
        (b"bytes\n", "string"),
    ],
)
def test_bad_texts_are_refused_for_signing(city: Signer, text: object, message: str) -> None:
    with pytest.raises(NoteError, match=re.escape(message)):
        sign_note(text, [city])  # type: ignore[arg-type]


def test_sign_note_needs_signers(city: Signer) -> None:
    with pytest.raises(NoteError, match="signers"):
        sign_note("a\n", [])
    with pytest.raises(NoteError, match="signers"):
        sign_note("a\n", city)  # type: ignore[arg-type]
    with pytest.raises(NoteError, match="given twice"):
        sign_note("a\n", [city, city])
    with pytest.raises(NoteError, match="Signer"):
        sign_note("a\n", [city.verifier])  # type: ignore[list-item]


def test_size_limits(city: Signer) -> None:
    with pytest.raises(NoteError, match="at most 16384"):
        sign_note("x" * MAX_NOTE_SIZE + "\n", [city])
    big = sign_note("x" * 20000 + "\n", [city], max_size=30000)
    with pytest.raises(NoteError, match="at most 16384"):
        parse_note(big)
    assert parse_note(big, max_size=30000).text.startswith("x")
    verify_note(big, [city.verifier], max_size=len(big))


def test_signature_count_limit(city: Signer) -> None:
    sig = parse_note(sign_note("a\n", [city])).signatures[0]
    at_limit = format_note(Note(text="a\n", signatures=(sig,) * MAX_SIGNATURES))
    assert len(parse_note(at_limit).signatures) == MAX_SIGNATURES
    with pytest.raises(NoteError, match="at most 100"):
        parse_note(at_limit.replace(b"\n\n", b"\n\n" + sig_line(sig), 1))
    with pytest.raises(NoteError, match="at most 100"):
        Note(text="a\n", signatures=(sig,) * (MAX_SIGNATURES + 1))
    with pytest.raises(NoteError, match="at least one"):
        Note(text="a\n", signatures=())


def sig_line(sig: NoteSignature) -> bytes:
    return (sig.line() + "\n").encode()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("a\n\n- Peter AAAAAAA=\n", "em dash"),
        ("a\n\n—Peter AAAAAAA=\n", "em dash"),
        ("a\n\n— Peter\n", "<name> <base64 signature>"),
        ("a\n\n—  AAAAAAA=\n", "must not be empty"),
        ("a\n\n— Pe+ter AAAAAAA=\n", "'+'"),
        ("a\n\n— Peter AAAAAAA\n", "base64"),
        ("a\n\n— Peter AAAAAAB=\n", "base64"),
        ("a\n\n— Peter AAAAAAA= \n", "base64"),
        ("a\n\n— Peter  AAAAAAA=\n", "base64"),
        ("a\n\n— Peter AAAAAA==\n", "4 bytes"),
        ("a\n\n— Peter AAAA\n", "3 bytes"),
        ("a\n\n— Peter \n", "0 bytes"),
        ("a\n\n— Peter AAAAAAA=\n\n", "signature line"),
        ("a\n\n— Peter AAAAAAA=\n— Paul AAAAAAA=", "newline"),
        ("\n— Peter AAAAAAA=\n", "blank line"),
        ("a\n\n— Peter AAAAAAA=\x7f\n", "base64"),
    ],
)
def test_malformed_signature_blocks(data: str, message: str) -> None:
    with pytest.raises(NoteError, match=re.escape(message)):
        parse_note(data.encode())


def test_minimal_signature_line_parses() -> None:
    note = parse_note("a\n\n— Peter AAAAAAA=\n".encode())
    assert note.signatures == (NoteSignature(name="Peter", key_id=bytes(4), signature=b"\x00"),)


def test_parse_note_needs_bytes() -> None:
    with pytest.raises(NoteError, match="expected bytes"):
        parse_note(GO_NOTE.decode())  # type: ignore[arg-type]
    assert parse_note(bytearray(GO_NOTE)) == parse_note(GO_NOTE)


# --- cosigning -------------------------------------------------------------------------


def test_add_signatures_cosigns(city: Signer, witness: Signer) -> None:
    data = sign_note("tree\n", [city])
    cosigned = add_signatures(data, [witness])
    assert cosigned.startswith(data)
    note, verified = verify_note(cosigned, [city.verifier, witness.verifier])
    assert verified == (city.verifier, witness.verifier)
    assert len(note.signatures) == 2


def test_add_signatures_keeps_unknown_lines(peter: Signer, witness: Signer) -> None:
    foreign = parse_note(GO_NOTE).signatures[0]
    odd = NoteSignature(name="cosig.example", key_id=b"\x01\x02\x03\x04", signature=b"\x04" * 72)
    data = format_note(Note(text=GO_TEXT, signatures=(foreign, odd)))
    cosigned = add_signatures(data, [witness])
    assert cosigned.startswith(data)
    note, _ = verify_note(cosigned, [peter.verifier, witness.verifier])
    assert note.signatures[:2] == (foreign, odd)


def test_add_signatures_replaces_the_same_key(city: Signer, witness: Signer) -> None:
    data = sign_note("tree\n", [city, witness])
    again = add_signatures(data, [city])
    note = parse_note(again)
    assert [s.name for s in note.signatures] == [witness.name, city.name]
    verify_note(again, [city.verifier, witness.verifier])


def test_add_signatures_errors(city: Signer, witness: Signer) -> None:
    data = sign_note("tree\n", [city])
    with pytest.raises(NoteError):
        add_signatures(data, [])
    with pytest.raises(NoteError, match="twice"):
        add_signatures(data, [witness, witness])
    with pytest.raises(NoteError):
        add_signatures(b"not a note", [witness])
    crowded = format_note(Note(text="tree\n", signatures=parse_note(data).signatures * MAX_SIGNATURES))
    with pytest.raises(NoteError, match="at most 100"):
        add_signatures(crowded, [witness])


# --- properties and hostile input ----------------------------------------------------------

_text_char = st.characters(blacklist_categories=("Cs",)).filter(lambda c: c == "\n" or ord(c) >= 0x20)
_texts = st.text(_text_char, max_size=200).map(lambda t: t + "\n")
_names = st.text(
    st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")).filter(lambda c: c != "+" and not c.isspace()),
    min_size=1,
    max_size=30,
)
_signatures = st.builds(
    lambda name, key_id, sig: NoteSignature(name=name, key_id=key_id, signature=sig),
    _names,
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=1, max_size=100),
)


@settings(max_examples=200, deadline=None)
@given(_texts, st.lists(_signatures, min_size=1, max_size=5))
def test_format_parse_round_trip(text: str, signatures: list[NoteSignature]) -> None:
    note = Note(text=text, signatures=tuple(signatures))
    data = format_note(note)
    assert parse_note(data) == note


@settings(max_examples=100, deadline=None)
@given(_texts)
def test_sign_verify_round_trip(text: str) -> None:
    signer = signer_from_seed("solidarity.example/city/lyon", bytes([1]) * 32)
    note, verified = verify_note(sign_note(text, [signer]), [signer.verifier])
    assert note.text == text
    assert verified == (signer.verifier,)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    vk = parse_verifier_key(PETER)
    try:
        note = parse_note(data)
    except NoteError:
        pass
    else:
        assert format_note(note) == data  # every accepted byte string re-formats identically
    with pytest.raises(ProtocolError):
        verify_note(data, [vk])


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_random_text(text: str) -> None:
    data = text.encode("utf-8", "surrogatepass")
    try:
        note = parse_note(data)
    except NoteError:
        return
    assert format_note(note) == data


_TWO_SIGNED = (GO_TEXT + "\n").encode() + GO_NOTE[len(GO_TEXT) + 1 :] + (
    EM + " EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"
).encode()


@settings(max_examples=400, deadline=None)
@given(
    st.integers(0, len(_TWO_SIGNED) - 1),
    st.sampled_from(["replace", "insert", "delete"]),
    st.binary(min_size=1, max_size=3),
)
def test_mutated_notes_never_verify_other_text(position: int, how: str, chunk: bytes) -> None:
    if how == "replace":
        data = _TWO_SIGNED[:position] + chunk + _TWO_SIGNED[position + len(chunk) :]
    elif how == "insert":
        data = _TWO_SIGNED[:position] + chunk + _TWO_SIGNED[position:]
    else:
        data = _TWO_SIGNED[:position] + _TWO_SIGNED[position + len(chunk) :]
    try:
        note, verified = verify_note(data, [parse_verifier_key(PETER)])
    except ProtocolError:
        return
    # Only edits to the unknown key's line can leave the note valid.
    assert note.text == GO_TEXT
    assert [str(v) for v in verified] == [PETER]


def test_verifier_key_type_in_note_module() -> None:
    # The Note types never accept a raw verifier key where a signature belongs.
    with pytest.raises(NoteError):
        NoteSignature(name="a", key_id=b"\x00" * 3, signature=b"\x00")
    with pytest.raises(NoteError):
        NoteSignature(name="a b", key_id=b"\x00" * 4, signature=b"\x00")
    with pytest.raises(NoteError):
        NoteSignature(name="a", key_id=b"\x00" * 4, signature=b"")
    assert isinstance(parse_verifier_key(PETER), VerifierKey)
