"""Ed25519 keys, verifier key strings and key files (protocol/keys.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import KeyFormatError
from protocol.keys import (
    ALG_ED25519,
    Signer,
    VerifierKey,
    decode_base64,
    format_verifier_key,
    is_valid_key_name,
    key_id,
    key_name_problem,
    load_private_key,
    parse_verifier_key,
    save_private_key,
    signer_from_seed,
)

VECTORS = Path(__file__).parent.parent / "vectors" / "ed25519"
RFC8032 = sorted(VECTORS.glob("rfc8032-*.json"))

# golang.org/x/mod sumdb/note/note_test.go (BSD-3-Clause, The Go Authors).
PETER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_PRIVATE = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
# The C2SP signed-note example key, and the Go checksum database's key
# (src/cmd/go/internal/modfetch/key.go), whose base64 holds "+" itself.
FOO = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SUMDB = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"

# The PKCS #8 PEM of the RFC 8032 TEST 1 key, as OpenSSL writes it.
TEST1_PEM = (
    b"-----BEGIN PRIVATE KEY-----\n"
    b"MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n"
    b"-----END PRIVATE KEY-----\n"
)


def peter_seed() -> bytes:
    raw = base64.b64decode(PETER_PRIVATE.split("+", 4)[-1])
    assert raw[0] == ALG_ED25519
    return raw[1:]


@pytest.fixture(scope="module")
def signer() -> Signer:
    return signer_from_seed("solidarity.example/city/lyon", bytes(range(32)))


# --- RFC 8032 known answers ---------------------------------------------------


@pytest.mark.parametrize("path", RFC8032, ids=[p.stem for p in RFC8032])
def test_rfc8032_vector(path: Path) -> None:
    v = json.loads(path.read_text())
    s = signer_from_seed("rfc8032", bytes.fromhex(v["secret"]))
    message = bytes.fromhex(v["message"])
    signature = bytes.fromhex(v["signature"])
    assert s.seed.hex() == v["secret"]
    assert s.verifier.public_key.hex() == v["public"]
    assert s.sign(message) == signature
    assert s.verifier.verify(message, signature)


@pytest.mark.parametrize("path", RFC8032, ids=[p.stem for p in RFC8032])
def test_rfc8032_every_bit_flip_fails(path: Path) -> None:
    v = json.loads(path.read_text())
    vk = signer_from_seed("rfc8032", bytes.fromhex(v["secret"])).verifier
    message = bytes.fromhex(v["message"])
    signature = bytes.fromhex(v["signature"])
    for bit in range(len(signature) * 8):
        bad = bytearray(signature)
        bad[bit // 8] ^= 1 << (bit % 8)
        assert not vk.verify(message, bytes(bad)), bit
    assert not vk.verify(message + b"\x00", signature)
    assert not vk.verify(message, signature[:-1])
    assert not vk.verify(message, signature + b"\x00")


# --- key ids and verifier key strings ------------------------------------------


@pytest.mark.parametrize("text", [PETER, ENOCH, FOO, SUMDB], ids=["peter", "enoch", "c2sp", "sumdb"])
def test_known_verifier_keys_round_trip(text: str) -> None:
    vk = parse_verifier_key(text)
    assert format_verifier_key(vk) == text
    assert str(vk) == text
    assert text in repr(vk)
    name, id_hex, _ = text.split("+", 2)
    assert vk.name == name
    assert vk.key_id.hex() == id_hex
    assert key_id(name, vk.public_key).hex() == id_hex


def test_key_id_is_c2sp_formula() -> None:
    pub = bytes(range(32))
    expected = hashlib.sha256(b"a.example/log\n\x01" + pub).digest()[:4]
    assert key_id("a.example/log", pub) == expected


def test_go_private_key_matches_go_verifier_key() -> None:
    s = signer_from_seed("PeterNeumann", peter_seed())
    assert s.verifier == parse_verifier_key(PETER)
    assert s.key_id == bytes.fromhex("c74f20a3")


def test_every_go_mangling_of_a_verifier_key_is_rejected() -> None:
    # As Go's TestNewVerifier: every proper substring and every byte bumped.
    b = PETER.encode()
    for i in range(len(b) + 1):
        for j in range(i + 1, len(b) + 1):
            if i == 0 and j == len(b):
                continue
            with pytest.raises(KeyFormatError):
                parse_verifier_key(b[i:j].decode())
    for i in range(len(b)):
        bumped = bytearray(b)
        bumped[i] += 1
        with pytest.raises(KeyFormatError):
            parse_verifier_key(bumped.decode())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # Go's TestNewVerifier: right hash for the wrong length, and for an unknown algorithm.
        ("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==", "base64"),
        ("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "unknown signature type 0x65"),
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase hex"),
        ("PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "8 lowercase hex"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeuman+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "must not be empty"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "spaces"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW\n", "base64"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=", "base64"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq_LDE4izWy10TW", "base64"),
        ("PeterNeumann+c74f20a3+", "empty"),
        ("PeterNeumann+c74f20a3", "expected <name>+<key id>+<key>"),
        ("", "expected <name>+<key id>+<key>"),
    ],
)
def test_bad_verifier_keys(text: str, message: str) -> None:
    with pytest.raises(KeyFormatError, match=re.escape(message)):
        parse_verifier_key(text)


@pytest.mark.parametrize("raw", [b"\x01" + bytes(31), b"\x01" + bytes(33), b"\x01"], ids=["31", "33", "0"])
def test_verifier_key_wrong_length_with_matching_id(raw: bytes) -> None:
    # The id is right for these bytes (Go hashes alg || key), only the length is wrong.
    id_hex = hashlib.sha256(b"PeterNeumann\n" + raw).digest()[:4].hex()
    text = f"PeterNeumann+{id_hex}+{base64.b64encode(raw).decode()}"
    with pytest.raises(KeyFormatError, match="ed25519 key must be 32 bytes"):
        parse_verifier_key(text)


def test_verifier_key_must_be_a_string() -> None:
    with pytest.raises(KeyFormatError, match="expected a string"):
        parse_verifier_key(PETER.encode())  # type: ignore[arg-type]


def test_verifier_key_checks_its_key_id() -> None:
    vk = parse_verifier_key(PETER)
    with pytest.raises(KeyFormatError, match="key id"):
        VerifierKey(name=vk.name, key_id=b"\x00\x00\x00\x00", public_key=vk.public_key)
    with pytest.raises(KeyFormatError, match="32 bytes"):
        VerifierKey(name=vk.name, key_id=vk.key_id, public_key=vk.public_key[:31])


@pytest.mark.parametrize(
    "name",
    ["solidarity.example/city/lyon", "PeterNeumann", "städte.example/köln", "a", "x" * 300, "log!#$%&'()*,-./:;<=>?@[]^_`{|}~"],
)
def test_valid_key_names(name: str) -> None:
    assert key_name_problem(name) is None
    assert is_valid_key_name(name)
    signer_from_seed(name, bytes(32))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        ("a+b", "'+'"),
        ("a b", "spaces"),
        ("a\tb", "spaces"),
        ("a\nb", "spaces"),
        ("a\u00a0b", "spaces"),  # no-break space
        ("a\u2003b", "spaces"),  # em space
        ("a\u3000b", "spaces"),  # ideographic space
        ("a\u2028b", "spaces"),  # line separator
        ("a\x00b", "control"),
        ("a\x1bb", "control"),
        ("a\ud800b", "utf-8"),  # lone surrogate
        (b"bytes", "string"),
        (None, "string"),
    ],
)
def test_invalid_key_names(name: object, message: str) -> None:
    problem = key_name_problem(name)
    assert problem is not None and message in problem
    assert not is_valid_key_name(name)
    with pytest.raises(KeyFormatError, match="key name"):
        signer_from_seed(name, bytes(32))  # type: ignore[arg-type]


def test_decode_base64_accepts_only_the_canonical_form() -> None:
    assert decode_base64("AAEC") == b"\x00\x01\x02"
    assert decode_base64("AAE=") == b"\x00\x01"
    assert decode_base64("") == b""
    for bad in ["AAF=", "AAE", "AAE==", "AA E=", "AAE=\n", "AA-_", "ÄAE=", "AAE=AAE="]:
        assert decode_base64(bad) is None, bad


# --- signers -------------------------------------------------------------------


def test_signer_signs_and_its_verifier_checks(signer: Signer) -> None:
    signature = signer.sign(b"hi")
    assert len(signature) == 64
    assert signer.verifier.verify(b"hi", signature)
    assert not signer.verifier.verify(b"ho", signature)
    other = signer_from_seed(signer.name, bytes(32))
    assert not other.verifier.verify(b"hi", signature)


def test_signer_is_deterministic_and_compares_by_public_key(signer: Signer) -> None:
    again = signer_from_seed(signer.name, signer.seed)
    assert again == signer
    assert hash(again) == hash(signer)
    assert again.sign(b"x") == signer.sign(b"x")
    assert signer_from_seed(signer.name, bytes(32)) != signer
    assert signer_from_seed("other.example", signer.seed) != signer


def test_signer_repr_hides_the_private_key(signer: Signer) -> None:
    text = repr(signer)
    assert signer.seed.hex() not in text
    assert base64.b64encode(signer.seed).decode() not in text
    assert str(signer.verifier) in text


@pytest.mark.parametrize("seed", [b"", bytes(31), bytes(33), "0" * 32, None])
def test_signer_from_seed_needs_32_bytes(seed: object) -> None:
    with pytest.raises(KeyFormatError, match="seed"):
        signer_from_seed("a.example", seed)  # type: ignore[arg-type]


def test_signer_needs_an_ed25519_key() -> None:
    with pytest.raises(KeyFormatError, match="expected an Ed25519 private key"):
        Signer(name="a.example", private_key=ec.generate_private_key(ec.SECP256R1()))  # type: ignore[arg-type]


# --- key files -------------------------------------------------------------------


def test_pem_known_answer() -> None:
    s = signer_from_seed("rfc8032.example", bytes.fromhex(
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60"
    ))
    assert save_private_key(s) == TEST1_PEM
    assert load_private_key(TEST1_PEM, "rfc8032.example") == s


def test_pem_round_trip_with_passphrase(signer: Signer) -> None:
    pem = save_private_key(signer, b"correct horse")
    assert pem.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert signer.seed not in pem
    loaded = load_private_key(pem, signer.name, b"correct horse")
    assert loaded == signer
    assert loaded.seed == signer.seed


def test_pem_missing_passphrase(signer: Signer) -> None:
    pem = save_private_key(signer, b"correct horse")
    with pytest.raises(KeyFormatError, match="^private key file is encrypted: a passphrase is required$"):
        load_private_key(pem, signer.name)


def test_pem_wrong_passphrase(signer: Signer) -> None:
    pem = save_private_key(signer, b"correct horse")
    with pytest.raises(KeyFormatError, match="^wrong passphrase or corrupted key file$"):
        load_private_key(pem, signer.name, b"battery staple")


def test_pem_corrupted_encrypted_file(signer: Signer) -> None:
    pem = bytearray(save_private_key(signer, b"correct horse"))
    pem[100] = ord("A") if pem[100] != ord("A") else ord("B")
    with pytest.raises(KeyFormatError):
        load_private_key(bytes(pem), signer.name, b"correct horse")


def test_pem_passphrase_for_a_plain_file(signer: Signer) -> None:
    with pytest.raises(KeyFormatError, match="not encrypted"):
        load_private_key(save_private_key(signer), signer.name, b"pass")


def test_pem_other_key_type() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(KeyFormatError, match="^expected an Ed25519 private key, got ECPrivateKey$"):
        load_private_key(pem, "a.example")


@pytest.mark.parametrize(
    "pem",
    [b"", b"hello", TEST1_PEM.replace(b"MC4C", b"MC5C"), TEST1_PEM[:40], b"\x00" * 100, b"-" * 20000],
    ids=["empty", "text", "bad-der", "truncated", "zeros", "huge"],
)
def test_pem_garbage(pem: bytes) -> None:
    with pytest.raises(KeyFormatError, match="private key file"):
        load_private_key(pem, "a.example")


def test_pem_empty_passphrase_refused(signer: Signer) -> None:
    with pytest.raises(KeyFormatError, match="passphrase"):
        save_private_key(signer, b"")
    with pytest.raises(KeyFormatError, match="passphrase"):
        load_private_key(save_private_key(signer), signer.name, b"")


def test_pem_name_is_checked() -> None:
    with pytest.raises(KeyFormatError, match="key name"):
        load_private_key(TEST1_PEM, "bad name")


# --- hostile input ------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_random_text_as_verifier_key(text: str) -> None:
    try:
        vk = parse_verifier_key(text)
    except KeyFormatError:
        return
    assert format_verifier_key(vk) == text


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(SUMDB) - 1), st.characters(), st.booleans())
def test_mutated_verifier_key(position: int, char: str, insert: bool) -> None:
    text = SUMDB[:position] + char + SUMDB[position + (0 if insert else 1) :]
    try:
        vk = parse_verifier_key(text)
    except KeyFormatError:
        return
    assert text == SUMDB  # the only accepted spelling is the original
    assert format_verifier_key(vk) == text


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_as_key_file(data: bytes) -> None:
    with pytest.raises(KeyFormatError):
        load_private_key(data, "a.example")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(TEST1_PEM) - 1), st.integers(0, 255))
def test_mutated_key_file(position: int, value: int) -> None:
    pem = bytearray(TEST1_PEM)
    pem[position] = value
    try:
        s = load_private_key(bytes(pem), "a.example")
    except KeyFormatError:
        return
    # PEM tolerates some edits (line breaks, base64 of ignored bits); whatever
    # loads must be an Ed25519 signer that works.
    assert s.verifier.verify(b"m", s.sign(b"m"))
