"""A tlog-tiles client written from the specs alone verifies the city's log over HTTP.

Nothing from ``protocol/`` is used here: only hashlib, base64, msgpack and the
cryptography package, following C2SP signed-note, tlog-checkpoint, tlog-tiles
and RFC 9162 directly. If our encoding drifted from the standards, this fails.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from node.app import create_app
from node.authoring import Event

from .conftest import OFFER


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def rfc9162_root(leaves: list[bytes]) -> bytes:
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return sha256(b"\x01" + rfc9162_root(leaves[:k]) + rfc9162_root(leaves[k:]))


def tile_index(n: int) -> str:
    digits = f"{n:03d}"
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([f"x{g}" for g in groups[:-1]] + [groups[-1]])


def verify_note(note: bytes, verifier: str) -> str:
    name, key_hex, key_b64 = verifier.split("+")
    key = base64.b64decode(key_b64)
    assert key[0] == 0x01
    key_id = sha256(name.encode() + b"\n" + b"\x01" + key[1:])[:4]
    assert key_id.hex() == key_hex
    text, sigs = note.decode().split("\n\n", 1)
    text += "\n"
    for line in sigs.splitlines():
        dash, sig_name, sig_b64 = line.split(" ")
        raw = base64.b64decode(sig_b64)
        if dash == "\u2014" and sig_name == name and raw[:4] == key_id:
            Ed25519PublicKey.from_public_bytes(key[1:]).verify(raw[4:], text.encode())
            return text
    raise AssertionError("no signature by the city's key")


async def test_independent_client_verifies_log_entries_and_bodies(make_node, aiohttp_client):
    node = make_node("Athens")
    node.author().append([Event(type="offer", body=OFFER)] * 699)  # 700 entries
    client = await aiohttp_client(create_app(node.config))
    [log] = (await (await client.get("/v1/logs")).json())["logs"]
    assert log["log_id"] == hashlib.sha256(log["origin"].encode()).hexdigest()
    prefix = log["prefix"]

    text = verify_note(await (await client.get(prefix + "checkpoint")).read(), log["verifier_key"])
    origin, size_line, root_b64 = text.splitlines()[:3]
    size, root = int(size_line), base64.b64decode(root_b64)
    assert origin == log["origin"] and size == 700

    leaves: list[bytes] = []
    for n in range(0, (size + 255) // 256):
        width = min(256, size - n * 256)
        suffix = "" if width == 256 else f".p/{width}"
        tile = await (await client.get(prefix + f"tile/0/{tile_index(n)}{suffix}")).read()
        assert len(tile) == 32 * width
        bundle = await (await client.get(prefix + f"tile/entries/{tile_index(n)}{suffix}")).read()
        bodies = await (await client.get(prefix + f"bodies/{tile_index(n)}{suffix}")).read()
        entries, salted = [], []
        for data, out in ((bundle, entries), (bodies, salted)):
            while data:
                (length,) = struct.unpack(">H", data[:2])
                out.append(data[2 : 2 + length])
                data = data[2 + length :]
        for i, (entry, body) in enumerate(zip(entries, salted, strict=True)):
            leaf = sha256(b"\x00" + entry)
            assert leaf == tile[32 * i : 32 * i + 32]
            fields = msgpack.unpackb(entry)
            assert fields["seq"] == n * 256 + i and fields["origin"] == origin
            assert sha256(body) == fields["body_hash"] and len(body) == fields["body_size"]
            assert msgpack.unpackb(body[16:]) == OFFER or fields["seq"] == 0
            leaves.append(leaf)
    assert rfc9162_root(leaves) == root

    # The level-1 partial tile holds the hashes of the two full level-0 tiles.
    level1 = await (await client.get(prefix + "tile/1/000.p/2")).read()
    assert level1 == rfc9162_root(leaves[:256]) + rfc9162_root(leaves[256:512])
