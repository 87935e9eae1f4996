"""C2SP tlog checkpoints (protocol/checkpoint.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    SignedCheckpoint,
    format_checkpoint,
    open_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
)
from protocol.errors import NoteError, ProtocolError, SignatureError
from protocol.keys import Signer, parse_verifier_key, signer_from_seed
from protocol.note import add_signatures, parse_note, sign_note, verify_note

VECTORS = Path(__file__).parent.parent / "vectors" / "note"

# The example of c2sp.org/tlog-checkpoint.
SPEC_TEXT = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
ORIGIN = "solidarity.example/city/lyon"
ROOT = hashlib.sha256(b"root").digest()


@pytest.fixture(scope="module")
def city() -> Signer:
    return signer_from_seed(ORIGIN, bytes([1]) * 32)


@pytest.fixture(scope="module")
def witness() -> Signer:
    return signer_from_seed("witness.example/w1", bytes([2]) * 32)


def test_spec_example() -> None:
    cp = parse_checkpoint(SPEC_TEXT)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert format_checkpoint(cp) == SPEC_TEXT


def test_sumdb_checkpoint_verifies_but_is_not_opened() -> None:
    # sum.golang.org signs origin "go.sum database tree" with key name
    # "sum.golang.org"; we require the key name to be the origin.
    case = json.loads((VECTORS / "sumdb-checkpoint.json").read_text(encoding="utf-8"))
    data = case["note"].encode()
    vk = parse_verifier_key(case["keys"][0])
    note, _ = verify_note(data, [vk])
    cp = parse_checkpoint(note.text)
    assert (cp.origin, cp.size) == ("go.sum database tree", 49189689)
    assert format_checkpoint(cp) == note.text
    with pytest.raises(SignatureError, match="is not the name of its key"):
        open_checkpoint(data, vk)


def test_extensions_round_trip() -> None:
    cp = Checkpoint(origin=ORIGIN, size=7, root=ROOT, extensions=("ext one", "— two"))
    text = format_checkpoint(cp)
    assert text == f"{ORIGIN}\n7\n{base64.b64encode(ROOT).decode()}\next one\n— two\n"
    assert parse_checkpoint(text) == cp


@pytest.mark.parametrize("size", [0, 1, 9, 10, 2**32, MAX_TREE_SIZE])
def test_sizes(size: int) -> None:
    cp = Checkpoint(origin=ORIGIN, size=size, root=ROOT)
    assert format_checkpoint(cp).split("\n")[1] == str(size)
    assert parse_checkpoint(format_checkpoint(cp)) == cp


def with_size(size_text: str) -> str:
    return f"{ORIGIN}\n{size_text}\n{base64.b64encode(ROOT).decode()}\n"


@pytest.mark.parametrize(
    "size_text",
    ["", "00", "01", "+1", "-1", " 1", "1 ", "1_000", "1e3", "0x10", "\u0661", "\uff11",
     str(2**63), "1" + "0" * 19, "9" * 40],
)
def test_non_canonical_sizes(size_text: str) -> None:
    with pytest.raises(NoteError, match="checkpoint size"):
        parse_checkpoint(with_size(size_text))


def with_root(root_text: str) -> str:
    return f"{ORIGIN}\n5\n{root_text}\n"


@pytest.mark.parametrize(
    "root_text",
    [
        "",
        base64.b64encode(ROOT[:31]).decode(),
        base64.b64encode(ROOT + b"\x00").decode(),
        base64.b64encode(ROOT).decode().rstrip("="),
        base64.b64encode(ROOT).decode() + "=",
        base64.b64encode(ROOT).decode()[:-2] + chr(ord(base64.b64encode(ROOT).decode()[-2]) ^ 1) + "=",
        base64.urlsafe_b64encode(b"\xff" * 32).decode(),
        " " + base64.b64encode(ROOT).decode(),
        ROOT.hex(),
    ],
    ids=["empty", "31-bytes", "33-bytes", "no-padding", "extra-padding", "low-bits", "urlsafe", "space", "hex"],
)
def test_non_canonical_roots(root_text: str) -> None:
    if root_text == base64.b64encode(ROOT).decode():  # low-bits variant must differ
        pytest.skip("mutation produced the canonical text")
    with pytest.raises(NoteError, match="checkpoint root"):
        parse_checkpoint(with_root(root_text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "newline"),
        (SPEC_TEXT[:-1], "newline"),
        ("a\n1\n", "at least 3 lines"),
        ("\n1\n" + base64.b64encode(ROOT).decode() + "\n", "origin must not be empty"),
        (SPEC_TEXT + "\n", "extension line 1 must not be empty"),
        (SPEC_TEXT + "ext\n\n", "extension line 2 must not be empty"),
        (SPEC_TEXT.replace("\n", "\r\n"), "checkpoint"),
        ("a\tb\n1\n" + base64.b64encode(ROOT).decode() + "\n", "control"),
        (b"bytes", "expected a string"),
    ],
)
def test_malformed_checkpoints(text: object, message: str) -> None:
    with pytest.raises(NoteError, match=re.escape(message)):
        parse_checkpoint(text)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"origin": ""}, "origin"),
        ({"origin": "a\nb"}, "origin"),
        ({"size": -1}, "size"),
        ({"size": 2**63}, "size"),
        ({"size": True}, "size"),
        ({"size": 1.0}, "size"),
        ({"root": ROOT[:31]}, "root"),
        ({"root": ROOT.hex()}, "root"),
        ({"extensions": ["x"]}, "extensions"),
        ({"extensions": ("",)}, "extension line 1"),
        ({"extensions": ("a\nb",)}, "extension line 1"),
    ],
)
def test_checkpoint_fields_are_validated(fields: dict, message: str) -> None:
    values = {"origin": ORIGIN, "size": 1, "root": ROOT} | fields
    with pytest.raises(NoteError, match=message):
        Checkpoint(**values)


# --- signing and opening ----------------------------------------------------------------


def test_sign_and_open(city: Signer) -> None:
    cp = Checkpoint(origin=ORIGIN, size=42, root=ROOT)
    data = sign_checkpoint(cp, city)
    assert data.startswith(format_checkpoint(cp).encode() + b"\n\xe2\x80\x94 " + ORIGIN.encode() + b" ")
    signed = open_checkpoint(data, city.verifier)
    assert signed == SignedCheckpoint(checkpoint=cp, note=data)


def test_sign_requires_the_origin_key(witness: Signer) -> None:
    with pytest.raises(NoteError, match="does not match the signer's key name"):
        sign_checkpoint(Checkpoint(origin=ORIGIN, size=1, root=ROOT), witness)


def test_cosigned_checkpoint_opens_and_keeps_cosignatures(city: Signer, witness: Signer) -> None:
    data = sign_checkpoint(Checkpoint(origin=ORIGIN, size=3, root=ROOT), city)
    cosigned = add_signatures(data, [witness])
    signed = open_checkpoint(cosigned, city.verifier)
    assert signed.note == cosigned
    assert signed.checkpoint.size == 3
    # Only the witness key is not enough: the log itself must have signed.
    with pytest.raises(SignatureError):
        open_checkpoint(cosigned, witness.verifier)


def test_open_with_another_key_of_the_same_name(city: Signer) -> None:
    data = sign_checkpoint(Checkpoint(origin=ORIGIN, size=3, root=ROOT), city)
    other = signer_from_seed(ORIGIN, bytes([3]) * 32)
    with pytest.raises(SignatureError, match="no signature by a known key"):
        open_checkpoint(data, other.verifier)


def test_open_rejects_a_note_signed_by_another_name(witness: Signer) -> None:
    # A key may sign any note; a checkpoint counts only under its origin's key.
    data = sign_note(format_checkpoint(Checkpoint(origin=ORIGIN, size=3, root=ROOT)), [witness])
    with pytest.raises(SignatureError, match="is not the name of its key"):
        open_checkpoint(data, witness.verifier)


def test_open_rejects_signed_text_that_is_no_checkpoint(city: Signer) -> None:
    data = sign_note("hello\n", [city])
    with pytest.raises(NoteError, match="checkpoint"):
        open_checkpoint(data, city.verifier)


def test_open_needs_a_verifier_key(city: Signer) -> None:
    data = sign_checkpoint(Checkpoint(origin=ORIGIN, size=3, root=ROOT), city)
    with pytest.raises(SignatureError, match="VerifierKey"):
        open_checkpoint(data, str(city.verifier))  # type: ignore[arg-type]


def test_every_bit_flip_of_a_signed_checkpoint_fails(city: Signer) -> None:
    data = sign_checkpoint(Checkpoint(origin=ORIGIN, size=1234, root=ROOT), city)
    text_length = len(parse_note(data).text.encode())
    for bit in range(text_length * 8):
        bad = bytearray(data)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ProtocolError):
            open_checkpoint(bytes(bad), city.verifier)


# --- properties and hostile input ---------------------------------------------------------

_line = st.text(
    st.characters(blacklist_categories=("Cs",)).filter(lambda c: ord(c) >= 0x20), min_size=1, max_size=40
)
_checkpoints = st.builds(
    lambda origin, size, root, ext: Checkpoint(origin=origin, size=size, root=root, extensions=tuple(ext)),
    _line,
    st.integers(0, MAX_TREE_SIZE),
    st.binary(min_size=32, max_size=32),
    st.lists(_line, max_size=3),
)


@settings(max_examples=200, deadline=None)
@given(_checkpoints)
def test_format_parse_round_trip(cp: Checkpoint) -> None:
    assert parse_checkpoint(format_checkpoint(cp)) == cp


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text(text: str) -> None:
    try:
        cp = parse_checkpoint(text)
    except NoteError:
        return
    assert format_checkpoint(cp) == text


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(SPEC_TEXT) - 1), st.characters(), st.booleans())
def test_mutated_spec_example(position: int, char: str, insert: bool) -> None:
    text = SPEC_TEXT[:position] + char + SPEC_TEXT[position + (0 if insert else 1) :]
    try:
        cp = parse_checkpoint(text)
    except NoteError:
        return
    assert format_checkpoint(cp) == text


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_to_open(data: bytes) -> None:
    vk = signer_from_seed(ORIGIN, bytes([1]) * 32).verifier
    with pytest.raises(ProtocolError):
        open_checkpoint(data, vk)
