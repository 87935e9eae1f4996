"""The network file: the trust root that every member node of a network installs.

A network is defined by a small TOML file: its name, the rule by which current
members admit a new city, and the founding cities, signed by the founders
(tests/vectors/network/two-founders.json, comments shortened)::

    # Solidarity network file: the network's trust root.
    # (more comments: what each part means, and the network hash)
    [network]
    name = "solidarity-cities"
    min_vouches = 2
    share_percent = 50

    [[founders]]
    name = "Athens"
    key = "athens.example/solidarity+86cefb4e+AVXYPbPY1gEeyr34Udbhdkh7X+bd7Jfi8qrpeukRQakt"
    url = "https://athens.example/solidarity"

    [[founders]]
    name = "Palermo"
    key = "solidarity.palermo.example/log+ddf39b4f+AVV1VzkeIO25YvpKCSzay8JNUm8um8Hh1Z+jOCmdFxeQ"
    url = "https://solidarity.palermo.example/"

    [signatures]
    lines = [
        "— athens.example/solidarity hs77TlvdYg9L3xKS/w8BNVK7iK4padlX+JwmIrPGoY24rZIhZbJShd+CseSsaxKeLBwCOpUze58ar96yqQhtUNeTcgs=",
        "— solidarity.palermo.example/log 3fObT0YGR48Rs9r414i453ugIEp6JW0ZkS/+Ysz6cMIM8J3RmOgY4Gao7aRSak1owb8AJcJCW0T9/2JnMVDmqpxkIQw=",
    ]

A founder's key is a C2SP signed-note verifier key string; its name is the
origin of the city's log.  After the founders, a city becomes a member when
enough members vouch for it (see :mod:`protocol.membership`):
``AdmissionRule.needed(n) = max(min_vouches, n * share_percent // 100 + 1)``
of the ``n`` current members.

What the founders sign is the file's content, not its text (comments, layout
and the order of the founders are free).  The canonical content is the
canonical MessagePack (:func:`protocol.encoding.encode`) of::

    {"admission": {"min_vouches": 2, "share_percent": 50},
     "founders": [{"key": "<verifier key string>", "name": "Athens", "url": "https://..."}, ...],
     "name": "solidarity-cities"}

with the founders sorted by key string; the network hash is its SHA-256.
Each signature line is a C2SP signed-note signature over the note text::

    solidarity-network-file/v1
    solidarity-cities
    85a489dc0e853d13a27e104e0e9ec9c85ef59748e45ca7fbc42dcd45d29458cc

so ``signing_text(nf) + "\\n" + line + "\\n"`` is a signed note that any
signed-note verifier (Go's ``sumdb/note``, say) checks with the founder's key.
Changing anything signed (the quorum, a founder, a URL) invalidates every
signature; founders then sign the new file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from protocol.encoding import encode
from protocol.errors import KeyFormatError, NetworkFileError, NoteError, SignatureError, preview
from protocol.keys import Signer, VerifierKey, parse_verifier_key
from protocol.note import NoteSignature, parse_signature_line

__all__ = [
    "MAX_CITY_NAME",
    "MAX_FILE_SIZE",
    "MAX_FOUNDERS",
    "MAX_MIN_VOUCHES",
    "MAX_SHARE_PERCENT",
    "MAX_SIGNATURES",
    "MAX_URL",
    "SIGNING_CONTEXT",
    "AdmissionRule",
    "Founder",
    "NetworkFile",
    "canonical_content",
    "format_network_file",
    "network_hash",
    "parse_network_file",
    "sign_network_file",
    "signing_text",
    "verify_network_signatures",
]

# A file with 1000 founders and as many signatures is about 0.5 MiB; refusing
# anything larger bounds what a hostile file can make us parse.
MAX_FILE_SIZE = 1024 * 1024
MAX_FOUNDERS = 1000
# Every founder may sign; signatures by other keys are kept but never count.
MAX_SIGNATURES = 1000
MAX_MIN_VOUCHES = 1000
MAX_SHARE_PERCENT = 99
# The same limits as the vouch v1 schema (schemas/vouch.v1.json), which
# describes a later member with the same three fields.
MAX_CITY_NAME = 200
MAX_URL = 500
SIGNING_CONTEXT = "solidarity-network-file/v1"

_NETWORK_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
# A founder's key name is its log's origin: the rule of protocol.entry (and
# of the vouch schema): 1 to 255 printable ASCII characters without space or "+".
_ORIGIN = re.compile(r"[!-*,-~]{1,255}")
_CITY_NAME_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
# The vouch v1 schema's url pattern: http(s), a host name or bracketed IP
# literal, an optional port, then only URL characters.
_URL = re.compile(
    r"https?://([A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(:[0-9]{1,5})?"
    r"([/?#][A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]*)?"
)

_NETWORK_KEYS = ("name", "min_vouches", "share_percent")
_FOUNDER_KEYS = ("name", "key", "url")


# --- values -----------------------------------------------------------------


def _describe(value: object) -> str:
    """``value``'s TOML type and a bounded rendering, for error messages."""
    kind = _TOML_TYPES.get(type(value), type(value).__name__)
    if isinstance(value, dict | list):
        return kind
    return f"{kind} {preview(value)}"


_TOML_TYPES: dict[type, str] = {
    bool: "boolean",
    int: "integer",
    float: "float",
    str: "string",
    list: "array",
    dict: "table",
    datetime: "date-time",
    date: "date",
    time: "time",
}


def _check_int(where: str, value: object, low: int, high: int) -> int:
    # bool is an int in Python, never in TOML.
    if type(value) is not int or not low <= value <= high:
        raise NetworkFileError(f"{where}: expected an integer from {low} to {high}, got {_describe(value)}")
    return value


def _check_str(where: str, value: object) -> str:
    if not isinstance(value, str):
        raise NetworkFileError(f"{where}: expected a string, got {_describe(value)}")
    return value


def _check_network_name(where: str, value: object) -> None:
    if _NETWORK_NAME.fullmatch(_check_str(where, value)) is None:
        raise NetworkFileError(
            f"{where}: expected 1 to 64 of a-z, 0-9, '.', '-' starting with a letter or digit, "
            f"got {preview(value)}"
        )


def _check_city_name(where: str, value: object) -> None:
    name = _check_str(where, value)
    if not 1 <= len(name) <= MAX_CITY_NAME:
        raise NetworkFileError(f"{where}: expected 1 to {MAX_CITY_NAME} characters, got {len(name)}")
    match = _CITY_NAME_CONTROL.search(name)
    if match is not None:
        raise NetworkFileError(f"{where}: control character U+{ord(match.group()):04X} not allowed")
    if name != name.strip():
        raise NetworkFileError(f"{where}: must not start or end with spaces, got {preview(name)}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NetworkFileError(f"{where}: not valid unicode at character {exc.start}") from exc


def _check_url(where: str, value: object) -> None:
    url = _check_str(where, value)
    if len(url) > MAX_URL:
        raise NetworkFileError(f"{where}: expected at most {MAX_URL} characters, got {len(url)}")
    if _URL.fullmatch(url) is None:
        raise NetworkFileError(f"{where}: expected an http or https URL, got {preview(url)}")


def _check_key(where: str, value: object) -> None:
    if not isinstance(value, VerifierKey):
        raise NetworkFileError(f"{where}: expected a VerifierKey, got {type(value).__name__}")
    if _ORIGIN.fullmatch(value.name) is None:
        raise NetworkFileError(
            f"{where}: key name is the log's origin: expected 1 to 255 printable ascii characters "
            f"without space or '+', got {preview(value.name)}"
        )


def _label(name: str, key_id: bytes) -> str:
    return f"{name}+{key_id.hex()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Founder:
    """A founding city: its name, its log's verifier key (named by the origin) and node URL."""

    name: str
    key: VerifierKey
    url: str

    def __post_init__(self) -> None:
        _check_city_name("founder name", self.name)
        _check_key("founder key", self.key)
        _check_url("founder url", self.url)


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionRule:
    """How many current members must vouch for (or revoke) a city.

    ``min_vouches`` keeps a small network from admitting on one word;
    ``share_percent`` makes the quorum grow with the network: more than that
    share of the members must agree (50 is a strict majority).
    """

    min_vouches: int
    share_percent: int

    def __post_init__(self) -> None:
        _check_int("min_vouches", self.min_vouches, 1, MAX_MIN_VOUCHES)
        _check_int("share_percent", self.share_percent, 0, MAX_SHARE_PERCENT)

    def needed(self, member_count: int) -> int:
        """Votes by members needed among ``member_count`` members."""
        _check_int("member count", member_count, 0, 2**63 - 1)
        return max(self.min_vouches, member_count * self.share_percent // 100 + 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkFile:
    """A network's name, admission rule, founders and the founders' signatures.

    Founders are kept in the order given (the file's order); no two share a
    key or an origin.  Signatures by keys that are not founders' are kept
    (a file passes through many hands) but never count.
    """

    name: str
    rule: AdmissionRule
    founders: tuple[Founder, ...]
    signatures: tuple[NoteSignature, ...] = ()

    def __post_init__(self) -> None:
        _check_network_name("network.name", self.name)
        if not isinstance(self.rule, AdmissionRule):
            raise NetworkFileError(f"network rule: expected an AdmissionRule, got {type(self.rule).__name__}")
        if not isinstance(self.founders, tuple):
            raise NetworkFileError(f"founders: expected a tuple, got {type(self.founders).__name__}")
        if not 1 <= len(self.founders) <= MAX_FOUNDERS:
            raise NetworkFileError(f"founders: expected 1 to {MAX_FOUNDERS}, got {len(self.founders)}")
        keys: dict[str, int] = {}
        origins: dict[str, int] = {}
        for i, founder in enumerate(self.founders):
            if not isinstance(founder, Founder):
                raise NetworkFileError(f"founders[{i}]: expected a Founder, got {type(founder).__name__}")
            key = str(founder.key)
            if key in keys:
                raise NetworkFileError(f"founders[{i}].key: the same key as founders[{keys[key]}]")
            if founder.key.name in origins:
                raise NetworkFileError(
                    f"founders[{i}].key: origin {preview(founder.key.name)} is "
                    f"already the origin of founders[{origins[founder.key.name]}]"
                )
            keys[key] = origins[founder.key.name] = i
        if not isinstance(self.signatures, tuple):
            raise NetworkFileError(f"signatures: expected a tuple, got {type(self.signatures).__name__}")
        if len(self.signatures) > MAX_SIGNATURES:
            raise NetworkFileError(
                f"signatures.lines: expected at most {MAX_SIGNATURES}, got {len(self.signatures)}"
            )
        seen: dict[tuple[str, bytes], int] = {}
        for i, sig in enumerate(self.signatures):
            if not isinstance(sig, NoteSignature):
                raise NetworkFileError(
                    f"signatures.lines[{i}]: expected a NoteSignature, got {type(sig).__name__}"
                )
            ident = (sig.name, sig.key_id)
            if ident in seen:
                raise NetworkFileError(
                    f"signatures.lines[{i}]: a second signature by key {_label(*ident)} "
                    f"(the first is lines[{seen[ident]}])"
                )
            seen[ident] = i


# --- content, hash, signatures ----------------------------------------------


def canonical_content(nf: NetworkFile) -> bytes:
    """The signed content: canonical MessagePack, founders sorted by key string."""
    founders = sorted(
        ({"key": str(f.key), "name": f.name, "url": f.url} for f in nf.founders),
        # Key strings are ASCII, so code point order is byte order.
        key=lambda item: item["key"],
    )
    return encode(
        {
            "admission": {"min_vouches": nf.rule.min_vouches, "share_percent": nf.rule.share_percent},
            "founders": founders,
            "name": nf.name,
        }
    )


def network_hash(nf: NetworkFile) -> bytes:
    """SHA-256 of the canonical content: one value names one network definition."""
    return hashlib.sha256(canonical_content(nf)).digest()


def signing_text(nf: NetworkFile) -> str:
    """The C2SP signed-note text each founder signs."""
    return f"{SIGNING_CONTEXT}\n{nf.name}\n{network_hash(nf).hex()}\n"


def sign_network_file(nf: NetworkFile, signer: Signer) -> NetworkFile:
    """A copy of ``nf`` signed by ``signer``, which must hold a founder's key.

    An earlier signature by the same key (name and key id) is replaced, as Go's
    ``note.Sign`` does; every other signature is kept, in order.
    """
    if not isinstance(nf, NetworkFile):
        raise NetworkFileError(f"network file: expected a NetworkFile, got {type(nf).__name__}")
    if not isinstance(signer, Signer):
        raise NetworkFileError(f"signer: expected a Signer, got {type(signer).__name__}")
    # Comparing the whole key, not only name and id, refuses a signer whose
    # signature would not verify anyway.
    if not any(f.key == signer.verifier for f in nf.founders):
        raise NetworkFileError(
            f"signer: key {_label(signer.name, signer.key_id)} is not the key of a founder of "
            f"network {nf.name}"
        )
    # C2SP signed-note: Ed25519 (RFC 8032) over the note text.
    signature = signer.sign(signing_text(nf).encode("utf-8"))
    fresh = NoteSignature(name=signer.name, key_id=signer.key_id, signature=signature)
    kept = tuple(s for s in nf.signatures if (s.name, s.key_id) != (fresh.name, fresh.key_id))
    return dataclasses.replace(nf, signatures=kept + (fresh,))


def verify_network_signatures(nf: NetworkFile) -> tuple[Founder, ...]:
    """The founders whose signature over the file verifies, in founder order.

    As C2SP signed-note verification does: signatures by keys that are not a
    founder's are ignored; a signature that names a founder's key (name and
    key id) and does not verify is a SignatureError, never silently dropped,
    because it means the file was changed after that founder signed it (or
    the signature was forged).  How many founders must have signed is the
    caller's decision; this returns an empty tuple when none did.
    """
    if not isinstance(nf, NetworkFile):
        raise NetworkFileError(f"network file: expected a NetworkFile, got {type(nf).__name__}")
    by_ident = {(f.key.name, f.key.key_id): f for f in nf.founders}
    message = signing_text(nf).encode("utf-8")
    verified: set[str] = set()
    for sig in nf.signatures:
        founder = by_ident.get((sig.name, sig.key_id))
        if founder is None:
            continue
        # RFC 8032 Ed25519 verification over the signed-note text.
        if not founder.key.verify(message, sig.signature):
            raise SignatureError(
                f"network file {nf.name}: signature by founder {_label(sig.name, sig.key_id)} does not "
                "verify (the file was changed after it was signed, or the signature is forged)"
            )
        verified.add(str(founder.key))
    return tuple(f for f in nf.founders if str(f.key) in verified)


# --- TOML -------------------------------------------------------------------

_HEADER = """\
# Solidarity network file: the network's trust root.
#
# Every node of the network installs this same file.
#
# [network] names the network and its admission rule. A city that is not a
# founder becomes a member when at least
#     max(min_vouches, members * share_percent // 100 + 1)
# current members (// rounds down) vouch for it in their logs, and stops being
# one, for good, when as many members revoke it.
#
# Each [[founders]] table is a founding city: its name, the verifier key of its
# log (C2SP signed-note; the key's name is the log's origin) and its node's URL.
#
# [signatures] holds the founders' C2SP signed-note signature lines over
#     solidarity-network-file/v1
#     <network name>
#     <network hash>
# where the network hash is the SHA-256 of the canonical MessagePack of the
# network, the rule and the founders. Comments, layout and the order of the
# founders are not signed; changing anything else invalidates every signature.
"""


def _toml_string(text: str) -> str:
    """A TOML basic string for ``text``.

    A JSON string is a TOML basic string (the same escapes), except that TOML
    also forbids a raw DEL; non-ASCII text stays readable (and astral
    characters never become JSON surrogate pairs, which TOML refuses).
    """
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def format_network_file(nf: NetworkFile) -> str:
    """The network file's TOML text, with comments; parse_network_file reads it back."""
    if not isinstance(nf, NetworkFile):
        raise NetworkFileError(f"network file: expected a NetworkFile, got {type(nf).__name__}")
    parts = [
        _HEADER,
        f"#\n# network hash: {network_hash(nf).hex()}\n",
        "\n[network]\n",
        f"name = {_toml_string(nf.name)}\n",
        f"min_vouches = {nf.rule.min_vouches}\n",
        f"share_percent = {nf.rule.share_percent}\n",
    ]
    for founder in nf.founders:
        parts += [
            "\n[[founders]]\n",
            f"name = {_toml_string(founder.name)}\n",
            f"key = {_toml_string(str(founder.key))}\n",
            f"url = {_toml_string(founder.url)}\n",
        ]
    parts.append("\n[signatures]\n")
    if nf.signatures:
        parts.append("lines = [\n")
        parts += [f"    {_toml_string(sig.line())},\n" for sig in nf.signatures]
        parts.append("]\n")
    else:
        parts.append("lines = []\n")
    text = "".join(parts)
    size = len(text.encode("utf-8"))
    if size > MAX_FILE_SIZE:
        raise NetworkFileError(f"network file: {size} bytes, at most {MAX_FILE_SIZE} allowed")
    return text


def _check_table(where: str, value: object, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict:
    if not isinstance(value, dict):
        raise NetworkFileError(f"{where}: expected a table, got {_describe(value)}")
    allowed = required + optional
    for key in value:
        if key not in allowed:
            raise NetworkFileError(
                f"{where}: unknown key {preview(key)}; expected {', '.join(allowed)}"
            )
    for key in required:
        if key not in value:
            raise NetworkFileError(f"{where}: missing key {key!r}")
    return value


def _check_array(where: str, value: object, limit: int) -> list:
    if not isinstance(value, list):
        raise NetworkFileError(f"{where}: expected an array, got {_describe(value)}")
    if len(value) > limit:
        raise NetworkFileError(f"{where}: expected at most {limit} items, got {len(value)}")
    return value


def _parse_founder(where: str, value: object) -> Founder:
    table = _check_table(where, value, _FOUNDER_KEYS)
    _check_city_name(f"{where}.name", table["name"])
    key_text = _check_str(f"{where}.key", table["key"])
    try:
        key = parse_verifier_key(key_text)
    except KeyFormatError as exc:
        raise NetworkFileError(f"{where}.key: {exc}") from exc
    _check_key(f"{where}.key", key)
    _check_url(f"{where}.url", table["url"])
    return Founder(name=table["name"], key=key, url=table["url"])


def _parse_signature_line(where: str, value: object) -> NoteSignature:
    """One C2SP signed-note signature line, parsed by the note module's own parser."""
    try:
        return parse_signature_line(_check_str(where, value), where)
    except NoteError as exc:
        raise NetworkFileError(str(exc)) from exc


def _load_toml(text: object) -> dict[str, Any]:
    if not isinstance(text, str):
        raise NetworkFileError(f"network file: expected text, got {type(text).__name__}")
    if len(text) > MAX_FILE_SIZE:
        raise NetworkFileError(f"network file: more than {MAX_FILE_SIZE} bytes ({len(text)} characters)")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise NetworkFileError(f"network file: not valid unicode at character {exc.start}") from exc
    if size > MAX_FILE_SIZE:
        raise NetworkFileError(f"network file: {size} bytes, at most {MAX_FILE_SIZE} allowed")
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise NetworkFileError(f"network file: not valid toml: {preview(str(exc), 120)}") from exc
    except RecursionError as exc:
        raise NetworkFileError("network file: not valid toml: arrays or tables nested too deeply") from exc
    except Exception as exc:  # noqa: BLE001 - tomllib is an edge; e.g. int() refuses huge numbers
        raise NetworkFileError(f"network file: not valid toml ({type(exc).__name__})") from exc


def parse_network_file(text: str) -> NetworkFile:
    """Read a network file's TOML text, refusing anything format_network_file would not write.

    Unknown or missing keys and tables, wrong types, bad keys, URLs or names,
    duplicate founders or signatures and files over :data:`MAX_FILE_SIZE`
    are NetworkFileError, whose message names the field (``founders[2].key``,
    counting from 0).  Signatures are not checked here: see
    :func:`verify_network_signatures`.  ``[signatures]`` may be left out of
    a draft nobody has signed yet.
    """
    doc = _load_toml(text)
    _check_table("network file", doc, ("network", "founders"), ("signatures",))
    network = _check_table("network", doc["network"], _NETWORK_KEYS)
    _check_network_name("network.name", network["name"])
    rule = AdmissionRule(
        min_vouches=_check_int("network.min_vouches", network["min_vouches"], 1, MAX_MIN_VOUCHES),
        share_percent=_check_int("network.share_percent", network["share_percent"], 0, MAX_SHARE_PERCENT),
    )
    items = _check_array("founders", doc["founders"], MAX_FOUNDERS)
    founders = tuple(_parse_founder(f"founders[{i}]", item) for i, item in enumerate(items))
    signatures: tuple[NoteSignature, ...] = ()
    if "signatures" in doc:
        table = _check_table("signatures", doc["signatures"], ("lines",))
        lines = _check_array("signatures.lines", table["lines"], MAX_SIGNATURES)
        signatures = tuple(
            _parse_signature_line(f"signatures.lines[{i}]", line) for i, line in enumerate(lines)
        )
    # The constructor checks what spans several items: founder count and
    # duplicates, duplicate signatures; its messages use the same field names.
    return NetworkFile(name=network["name"], rule=rule, founders=founders, signatures=signatures)
