"""Ed25519 keys, C2SP signed-note verifier key strings, and private key files.

A city's identity is written as a verifier key string (C2SP signed-note, the
format Go's ``golang.org/x/mod/sumdb/note`` reads)::

    PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW
    <key name> + <key id, 8 lowercase hex> + base64(0x01 || 32-byte public key)

The key name is usually the log's origin (``solidarity.example/city/lyon``);
it must be non-empty and hold no Unicode space and no ``+``.  The key id is a
short identifier, not a fingerprint: a verifier always checks the signature
with the full public key it was configured with.

The private key is kept as a PKCS #8 PEM file, encrypted when the operator
gives a passphrase (this one holds the published RFC 8032 TEST 1 key)::

    -----BEGIN PRIVATE KEY-----
    MC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g
    -----END PRIVATE KEY-----

Randomness is never drawn here for keys: a new key is ``signer_from_seed``
with 32 random bytes the caller drew from the operating system.  (Encrypting a key file
is the one exception: the ``cryptography`` package picks the salt and IV.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass, field
from typing import cast

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from protocol.errors import KeyFormatError, preview

__all__ = [
    "ALG_ED25519",
    "KEY_ID_SIZE",
    "MAX_KEY_FILE_SIZE",
    "PUBLIC_KEY_SIZE",
    "SEED_SIZE",
    "SIGNATURE_SIZE",
    "Signer",
    "VerifierKey",
    "decode_base64",
    "format_verifier_key",
    "is_valid_key_name",
    "key_id",
    "key_name_problem",
    "load_private_key",
    "parse_verifier_key",
    "save_private_key",
    "signer_from_seed",
]

# C2SP signed-note, "Signature types": 0x01 is Ed25519.
ALG_ED25519 = 0x01
KEY_ID_SIZE = 4
PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64
# An Ed25519 PKCS #8 PEM is about 120 bytes (about 300 encrypted); anything
# far larger is not a key file, and refusing it early bounds the work.
MAX_KEY_FILE_SIZE = 16 * 1024


def decode_base64(text: str) -> bytes | None:
    """Decode standard base64 (RFC 4648 section 4) in its one canonical form.

    Returns None for anything else: characters outside the alphabet, missing
    or extra padding, whitespace, or non-zero unused bits.  Accepting only the
    canonical form means one value has one spelling, so signed bytes and
    stored evidence can be compared byte for byte.
    """
    if not isinstance(text, str) or not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def key_name_problem(name: object) -> str | None:
    """Say what makes ``name`` an invalid key name, or None if it is valid.

    C2SP signed-note: key names MUST be non-empty and MUST NOT contain Unicode
    spaces or "+".  We also refuse ASCII control characters (a signed note may
    not hold them anyway) and strings that are not valid UTF-8.
    """
    if not isinstance(name, str):
        return f"must be a string, got {type(name).__name__}"
    if not name:
        return "must not be empty"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return f"must be valid utf-8, got {preview(name)}"
    for ch in name:
        if ch == "+":
            return f"must not contain '+', got {preview(name)}"
        if ch.isspace():
            return f"must not contain spaces, got {preview(name)}"
        if ord(ch) < 0x20:
            return f"must not contain control characters, got {preview(name)}"
    return None


def is_valid_key_name(name: object) -> bool:
    """Whether ``name`` may name a signed-note key (see :func:`key_name_problem`)."""
    return key_name_problem(name) is None


def _check_name(name: object) -> str:
    problem = key_name_problem(name)
    if problem is not None:
        raise KeyFormatError(f"key name {problem}")
    return cast(str, name)


def _check_public_key(public_key: object) -> bytes:
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_SIZE:
        got = len(public_key) if isinstance(public_key, bytes) else type(public_key).__name__
        raise KeyFormatError(f"public key: expected {PUBLIC_KEY_SIZE} bytes, got {got}")
    return public_key


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key id that signature lines carry to name the signing key."""
    _check_name(name)
    _check_public_key(public_key)
    # C2SP signed-note, "Ed25519 signatures":
    # key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4]
    digest = hashlib.sha256(
        name.encode("utf-8") + b"\n" + bytes([ALG_ED25519]) + public_key
    ).digest()
    return digest[:KEY_ID_SIZE]


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifierKey:
    """A named Ed25519 public key that checks signed notes.

    Construction checks that ``key_id`` belongs to ``name`` and
    ``public_key``, so a VerifierKey is always self-consistent.
    """

    name: str
    key_id: bytes
    public_key: bytes
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        _check_public_key(self.public_key)
        expected = key_id(self.name, self.public_key)
        if self.key_id != expected:
            got = self.key_id.hex() if isinstance(self.key_id, bytes) else preview(self.key_id)
            raise KeyFormatError(f"key id: expected {expected.hex()} for this name and key, got {got}")
        try:
            key = Ed25519PublicKey.from_public_bytes(self.public_key)
        except ValueError as exc:
            raise KeyFormatError("public key: not a valid ed25519 public key") from exc
        # The parsed key is cached once; the dataclass stays frozen for callers.
        object.__setattr__(self, "_key", key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's RFC 8032 Ed25519 signature of ``message``."""
        if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
            return False
        try:
            # RFC 8032 section 5.1.7: verify (pyca/cryptography rejects non-canonical S).
            self._key.verify(signature, bytes(message))
        except InvalidSignature:
            return False
        return True

    def __str__(self) -> str:
        return format_verifier_key(self)

    def __repr__(self) -> str:
        return f"VerifierKey({format_verifier_key(self)!r})"


def format_verifier_key(vk: VerifierKey) -> str:
    """The verifier key string ``<name>+<key id hex>+<base64(0x01 || key)>``."""
    material = base64.b64encode(bytes([ALG_ED25519]) + vk.public_key).decode("ascii")
    return f"{vk.name}+{vk.key_id.hex()}+{material}"


def parse_verifier_key(text: str) -> VerifierKey:
    """Read a verifier key string, accepting only the form format_verifier_key writes."""
    if not isinstance(text, str):
        raise KeyFormatError(f"verifier key: expected a string, got {type(text).__name__}")
    # The name holds no "+", and neither does the id, so the first two "+"
    # split the fields; the base64 material may itself contain "+".
    parts = text.split("+", 2)
    if len(parts) != 3:
        raise KeyFormatError(
            f"verifier key: expected <name>+<key id>+<key>, got {preview(text)}"
        )
    name, id_hex, material = parts
    problem = key_name_problem(name)
    if problem is not None:
        raise KeyFormatError(f"verifier key: name {problem}")
    if len(id_hex) != 2 * KEY_ID_SIZE or any(c not in "0123456789abcdef" for c in id_hex):
        raise KeyFormatError(
            f"verifier key: key id must be 8 lowercase hex digits, got {preview(id_hex)}"
        )
    raw = decode_base64(material)
    if raw is None:
        raise KeyFormatError(
            f"verifier key: key must be canonical standard base64, got {preview(material)}"
        )
    if not raw:
        raise KeyFormatError("verifier key: key is empty")
    if raw[0] != ALG_ED25519:
        raise KeyFormatError(
            f"verifier key: unknown signature type 0x{raw[0]:02x}, expected 0x01 (ed25519)"
        )
    if len(raw) != 1 + PUBLIC_KEY_SIZE:
        raise KeyFormatError(
            f"verifier key: ed25519 key must be {PUBLIC_KEY_SIZE} bytes, got {len(raw) - 1}"
        )
    public_key = raw[1:]
    expected = key_id(name, public_key)
    if bytes.fromhex(id_hex) != expected:
        raise KeyFormatError(
            f"verifier key: key id {id_hex} does not match name and key (expected {expected.hex()})"
        )
    return VerifierKey(name=name, key_id=expected, public_key=public_key)


@dataclass(frozen=True, slots=True, kw_only=True)
class Signer:
    """A named Ed25519 private key that signs notes.

    Two signers are equal when they have the same name and public key; the
    private key never appears in ``repr``.
    """

    name: str
    private_key: Ed25519PrivateKey = field(repr=False, compare=False)
    verifier: VerifierKey = field(init=False)

    def __post_init__(self) -> None:
        _check_name(self.name)
        if not isinstance(self.private_key, Ed25519PrivateKey):
            raise KeyFormatError(
                f"private key: expected an Ed25519 private key, got {type(self.private_key).__name__}"
            )
        public_key = self.private_key.public_key().public_bytes_raw()
        verifier = VerifierKey(
            name=self.name, key_id=key_id(self.name, public_key), public_key=public_key
        )
        object.__setattr__(self, "verifier", verifier)

    @property
    def key_id(self) -> bytes:
        return self.verifier.key_id

    @property
    def seed(self) -> bytes:
        """The 32-byte RFC 8032 private key (the seed the key pair derives from)."""
        return self.private_key.private_bytes_raw()

    def sign(self, message: bytes) -> bytes:
        """The 64-byte RFC 8032 Ed25519 signature of ``message`` (deterministic)."""
        return self.private_key.sign(bytes(message))


def signer_from_seed(name: str, seed: bytes) -> Signer:
    """A Signer for the RFC 8032 private key ``seed`` (32 bytes the caller chose)."""
    if not isinstance(seed, bytes) or len(seed) != SEED_SIZE:
        got = len(seed) if isinstance(seed, bytes) else type(seed).__name__
        raise KeyFormatError(f"seed: expected {SEED_SIZE} bytes, got {got}")
    return Signer(name=name, private_key=Ed25519PrivateKey.from_private_bytes(seed))


def save_private_key(signer: Signer, passphrase: bytes | None = None) -> bytes:
    """The signer's key as a PKCS #8 PEM file, encrypted if a passphrase is given.

    The name is not stored: it is configuration, passed again to
    :func:`load_private_key`.
    """
    if passphrase is None:
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    else:
        if not isinstance(passphrase, bytes) or not passphrase:
            raise KeyFormatError("passphrase: expected non-empty bytes")
        encryption = serialization.BestAvailableEncryption(passphrase)
    return signer.private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def load_private_key(pem: bytes, name: str, passphrase: bytes | None = None) -> Signer:
    """Read a key file written by :func:`save_private_key` (or OpenSSL) as a Signer."""
    _check_name(name)
    if not isinstance(pem, bytes):
        raise KeyFormatError(f"private key file: expected bytes, got {type(pem).__name__}")
    if len(pem) > MAX_KEY_FILE_SIZE:
        raise KeyFormatError(
            f"private key file: {len(pem)} bytes, at most {MAX_KEY_FILE_SIZE} expected"
        )
    if passphrase is not None and (not isinstance(passphrase, bytes) or not passphrase):
        raise KeyFormatError("passphrase: expected non-empty bytes or None")
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase)
    except TypeError as exc:
        # pyca/cryptography signals a passphrase mismatch with TypeError.
        if passphrase is None:
            raise KeyFormatError("private key file is encrypted: a passphrase is required") from exc
        raise KeyFormatError(
            "private key file is not encrypted, but a passphrase was given"
        ) from exc
    except ValueError as exc:
        if passphrase is not None and b"ENCRYPTED" in pem:
            raise KeyFormatError("wrong passphrase or corrupted key file") from exc
        raise KeyFormatError("private key file: not a readable pkcs8 pem private key") from exc
    except UnsupportedAlgorithm as exc:
        raise KeyFormatError("private key file: unsupported key type or encryption") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFormatError(f"expected an Ed25519 private key, got {type(key).__name__}")
    return Signer(name=name, private_key=key)
