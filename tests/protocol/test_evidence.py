"""Evidence of equivocation (protocol/evidence.py)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import encoding
from protocol.checkpoint import Checkpoint, SignedCheckpoint, open_checkpoint, sign_checkpoint
from protocol.errors import EncodingError, EvidenceError, ProtocolError
from protocol.evidence import (
    MAX_PATH_LENGTH,
    Consistent,
    Evidence,
    Inconsistent,
    InvalidProof,
    check_evidence,
    compare_checkpoints,
    decode_evidence,
    encode_evidence,
)
from protocol.keys import Signer, VerifierKey, parse_verifier_key, signer_from_seed
from protocol.merkle import LeafHashes, leaf_hash, prove_consistency, root_of
from protocol.note import add_signatures

VECTORS = Path(__file__).parent.parent / "vectors" / "evidence"
EVIDENCE_VECTORS = sorted(VECTORS.glob("*.json"))
ORIGIN = "solidarity.example/city/lyon"


def load_make_vectors():
    spec = importlib.util.spec_from_file_location("make_evidence_vectors", VECTORS / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def vector(path: Path) -> tuple[dict, Evidence, VerifierKey]:
    case = json.loads(path.read_text(encoding="utf-8"))
    ev = decode_evidence(bytes.fromhex(case["evidence"]))
    return case, ev, parse_verifier_key(case["verifier"])


SIGNER = signer_from_seed(ORIGIN, bytes([1]) * 32)


def honest_leaves(n: int) -> list[bytes]:
    return [leaf_hash(b"honest %d" % i) for i in range(n)]


def forked_leaves(n: int, fork: int) -> list[bytes]:
    return [leaf_hash((b"honest %d" if i < fork else b"forked %d") % i) for i in range(n)]


def signed(hashes: list[bytes], signer: Signer = SIGNER) -> SignedCheckpoint:
    cp = Checkpoint(origin=signer.name, size=len(hashes), root=root_of(hashes))
    return open_checkpoint(sign_checkpoint(cp, signer), signer.verifier)


# --- stored vectors -----------------------------------------------------------------


@pytest.mark.parametrize("path", EVIDENCE_VECTORS, ids=[p.stem for p in EVIDENCE_VECTORS])
def test_vector_verifies(path: Path) -> None:
    case, ev, vk = vector(path)
    assert case["source"]
    assert ev == Evidence(
        kind=case["kind"],
        older=case["older"].encode(),
        newer=case["newer"].encode(),
        path=tuple(bytes.fromhex(h) for h in case["path"]),
    )
    assert encode_evidence(ev).hex() == case["evidence"]
    check_evidence(ev, vk)


def test_vectors_are_reproducible() -> None:
    built = load_make_vectors().build()
    assert sorted(built) == sorted(p.stem for p in EVIDENCE_VECTORS)
    for name, data in built.items():
        assert json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8")) == data, name


def test_power_of_two_vector_carries_the_old_subtree() -> None:
    case, ev, _ = vector(VECTORS / "inconsistent-power-of-two.json")
    assert case["older"].split("\n")[1] == "4"
    # RFC 9162 leaves the old root out of the proof for size 4; the evidence has one hash more.
    newer_size = int(case["newer"].split("\n")[1])
    proof = prove_consistency(4, newer_size, LeafHashes([bytes(32)] * newer_size))
    assert len(ev.path) == len(proof) + 1


@pytest.mark.parametrize("path", EVIDENCE_VECTORS, ids=[p.stem for p in EVIDENCE_VECTORS])
def test_corrupted_vector_fails(path: Path) -> None:
    _, ev, vk = vector(path)
    # Every single bit of every path hash matters.
    for i, h in enumerate(ev.path):
        for bit in range(256):
            bad = bytearray(h)
            bad[bit // 8] ^= 1 << (bit % 8)
            path_ = ev.path[:i] + (bytes(bad),) + ev.path[i + 1 :]
            with pytest.raises(EvidenceError):
                check_evidence(dataclasses.replace(ev, path=path_), vk)
    # Swapped notes, a note with one byte changed, a path cut short, another key.
    if ev.kind == "inconsistent":
        with pytest.raises(EvidenceError):
            check_evidence(dataclasses.replace(ev, older=ev.newer, newer=ev.older), vk)
        with pytest.raises(EvidenceError):
            check_evidence(dataclasses.replace(ev, path=ev.path[:-1]), vk)
        with pytest.raises(EvidenceError):
            check_evidence(dataclasses.replace(ev, kind="same-size", path=()), vk)
    else:
        with pytest.raises(EvidenceError):
            check_evidence(dataclasses.replace(ev, newer=ev.older), vk)
        with pytest.raises(EvidenceError):
            check_evidence(dataclasses.replace(ev, kind="inconsistent", path=(bytes(32),)), vk)
    for which in ("older", "newer"):
        note = bytearray(getattr(ev, which))
        for position in range(len(note)):
            bad = bytearray(note)
            bad[position] ^= 0x01
            with pytest.raises(EvidenceError):
                check_evidence(dataclasses.replace(ev, **{which: bytes(bad)}), vk)
    other = signer_from_seed(vk.name, bytes([5]) * 32).verifier
    with pytest.raises(EvidenceError, match="no signature by a known key"):
        check_evidence(ev, other)


@pytest.mark.parametrize("path", EVIDENCE_VECTORS, ids=[p.stem for p in EVIDENCE_VECTORS])
def test_corrupted_encoding_fails(path: Path) -> None:
    case, _, vk = vector(path)
    data = bytes.fromhex(case["evidence"])
    for position in range(len(data)):
        bad = bytearray(data)
        bad[position] ^= 0x01
        with pytest.raises(ProtocolError):
            check_evidence(decode_evidence(bytes(bad)), vk)


# --- compare_checkpoints ---------------------------------------------------------------


def test_honest_growth_is_consistent_in_either_order() -> None:
    hashes = honest_leaves(13)
    for m in range(0, 14):
        proof = prove_consistency(m, 13, LeafHashes(hashes))
        a, b = signed(hashes[:m]), signed(hashes)
        assert compare_checkpoints(a, b, proof) == Consistent()
        assert compare_checkpoints(b, a, proof) == Consistent()


def test_same_size_different_roots() -> None:
    a, b = signed(honest_leaves(5)), signed(forked_leaves(5, 2))
    result = compare_checkpoints(a, b, [])
    assert isinstance(result, Inconsistent)
    assert result.evidence == Evidence(kind="same-size", older=a.note, newer=b.note)
    check_evidence(result.evidence, SIGNER.verifier)


def test_same_size_ignores_the_proof() -> None:
    a = signed(honest_leaves(5))
    assert compare_checkpoints(a, a, [bytes(32)]) == Consistent()


def test_fork_is_inconsistent() -> None:
    honest = honest_leaves(11)
    older, newer = signed(forked_leaves(6, 3)), signed(honest)
    proof = prove_consistency(6, 11, LeafHashes(honest))
    result = compare_checkpoints(newer, older, proof)
    assert isinstance(result, Inconsistent)
    assert result.evidence.kind == "inconsistent"
    assert result.evidence.older == older.note and result.evidence.newer == newer.note
    assert result.evidence.path == tuple(proof)
    check_evidence(result.evidence, SIGNER.verifier)


def test_fork_at_power_of_two_needs_the_old_subtree() -> None:
    honest = honest_leaves(9)
    older, newer = signed(forked_leaves(4, 1)), signed(honest)
    proof = prove_consistency(4, 9, LeafHashes(honest))
    result = compare_checkpoints(older, newer, proof)
    assert isinstance(result, InvalidProof)
    assert "power of two" in result.reason
    result = compare_checkpoints(older, newer, proof, old_subtree=root_of(honest[:4]))
    assert isinstance(result, Inconsistent)
    assert result.evidence.path == (root_of(honest[:4]), *proof)
    check_evidence(result.evidence, SIGNER.verifier)
    # A made-up subtree hash does not rebuild the newer root: no evidence.
    result = compare_checkpoints(older, newer, proof, old_subtree=bytes(32))
    assert isinstance(result, InvalidProof)


def test_old_subtree_is_ignored_when_consistent() -> None:
    honest = honest_leaves(9)
    proof = prove_consistency(4, 9, LeafHashes(honest))
    for subtree in (root_of(honest[:4]), bytes(32)):
        assert compare_checkpoints(signed(honest[:4]), signed(honest), proof, old_subtree=subtree) == Consistent()


@pytest.mark.parametrize(
    "garble",
    [
        lambda p: p[:-1],
        lambda p: [*p, bytes(32)],
        lambda p: [],
        lambda p: [bytes(32)] * len(p),
        lambda p: [h[:31] for h in p],
        lambda p: [h.hex() for h in p],
        lambda p: list(reversed(p)),
        lambda p: 42,
    ],
    ids=["short", "long", "empty", "zeros", "truncated-hashes", "hex", "reversed", "not-a-list"],
)
def test_garbled_proofs_are_invalid(garble) -> None:
    honest = honest_leaves(11)
    proof = prove_consistency(6, 11, LeafHashes(honest))
    for older in (signed(honest[:6]), signed(forked_leaves(6, 3))):
        result = compare_checkpoints(older, signed(honest), garble(proof))
        assert isinstance(result, InvalidProof), result


def test_different_logs_cannot_be_compared() -> None:
    other = signer_from_seed("other.example/log", bytes([3]) * 32)
    with pytest.raises(EvidenceError, match="different logs"):
        compare_checkpoints(signed(honest_leaves(3)), signed(honest_leaves(4), other), [])
    with pytest.raises(EvidenceError, match="SignedCheckpoint"):
        compare_checkpoints(signed(honest_leaves(3)), "x", [])  # type: ignore[arg-type]


def test_cosigned_notes_stay_in_the_evidence() -> None:
    witness = signer_from_seed("witness.example/w1", bytes([2]) * 32)
    a = signed(honest_leaves(5))
    b = signed(forked_leaves(5, 1))
    cosigned = open_checkpoint(add_signatures(b.note, [witness]), SIGNER.verifier)
    result = compare_checkpoints(a, cosigned, [])
    assert isinstance(result, Inconsistent)
    assert result.evidence.newer == cosigned.note
    check_evidence(result.evidence, SIGNER.verifier)


# --- check_evidence refusals ----------------------------------------------------------------


def test_consistent_path_is_not_evidence() -> None:
    honest = honest_leaves(11)
    proof = prove_consistency(6, 11, LeafHashes(honest))
    ev = Evidence(kind="inconsistent", older=signed(honest[:6]).note, newer=signed(honest).note, path=tuple(proof))
    with pytest.raises(EvidenceError, match="rebuilds the older root too"):
        check_evidence(ev, SIGNER.verifier)


def test_sizes_must_fit_the_kind() -> None:
    five, six = signed(honest_leaves(5)), signed(forked_leaves(6, 1))
    with pytest.raises(EvidenceError, match="expected equal sizes"):
        check_evidence(Evidence(kind="same-size", older=five.note, newer=six.note), SIGNER.verifier)
    with pytest.raises(EvidenceError, match="expected 0 < older < newer"):
        check_evidence(
            Evidence(kind="inconsistent", older=six.note, newer=five.note, path=(bytes(32),)), SIGNER.verifier
        )
    empty = signed([])
    with pytest.raises(EvidenceError, match="expected 0 < older < newer"):
        check_evidence(Evidence(kind="inconsistent", older=empty.note, newer=five.note, path=(bytes(32),)), SIGNER.verifier)
    with pytest.raises(EvidenceError, match="same root"):
        check_evidence(Evidence(kind="same-size", older=five.note, newer=five.note), SIGNER.verifier)


def test_notes_must_be_the_logs_own() -> None:
    other = signer_from_seed("other.example/log", bytes([3]) * 32)
    mine, theirs = signed(honest_leaves(5)), signed(forked_leaves(5, 1), other)
    with pytest.raises(EvidenceError, match="newer checkpoint"):
        check_evidence(Evidence(kind="same-size", older=mine.note, newer=theirs.note), SIGNER.verifier)
    with pytest.raises(EvidenceError, match="older checkpoint"):
        check_evidence(Evidence(kind="same-size", older=theirs.note, newer=mine.note), SIGNER.verifier)
    with pytest.raises(EvidenceError, match="VerifierKey"):
        check_evidence(Evidence(kind="same-size", older=mine.note, newer=mine.note), str(SIGNER.verifier))  # type: ignore[arg-type]
    with pytest.raises(EvidenceError, match="expected Evidence"):
        check_evidence("evidence", SIGNER.verifier)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "forked"}, "kind"),
        ({"older": b""}, "older"),
        ({"newer": "text"}, "newer"),
        ({"older": b"x" * 20000}, "at most"),
        ({"path": [bytes(32)]}, "tuple"),
        ({"path": (bytes(31),)}, "hash 0"),
        ({"path": (bytes(32),) * (MAX_PATH_LENGTH + 1)}, "at most"),
        ({"kind": "same-size", "path": (bytes(32),)}, "no path"),
        ({"kind": "inconsistent", "path": ()}, "needs a consistency path"),
    ],
)
def test_evidence_fields_are_validated(fields: dict, message: str) -> None:
    values = {"kind": "inconsistent", "older": b"a", "newer": b"b", "path": (bytes(32),)} | fields
    with pytest.raises(EvidenceError, match=message):
        Evidence(**values)


# --- encoding -----------------------------------------------------------------------------------


def test_encoding_is_the_canonical_map() -> None:
    ev = Evidence(kind="inconsistent", older=b"o", newer=b"n", path=(bytes(32),))
    data = encode_evidence(ev)
    assert data == encoding.encode({"kind": "inconsistent", "newer": b"n", "older": b"o", "path": [bytes(32)]})
    assert decode_evidence(data) == ev


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1, 2], "expected a map"),
        ({"kind": "same-size", "older": b"o", "newer": b"n"}, "missing fields"),
        ({"kind": "same-size", "older": b"o", "newer": b"n", "path": [], "extra": 1}, "unknown fields"),
        ({"kind": 1, "older": b"o", "newer": b"n", "path": []}, "kind"),
        ({"kind": "same-size", "older": "o", "newer": b"n", "path": []}, "older"),
        ({"kind": "same-size", "older": b"o", "newer": None, "path": []}, "newer"),
        ({"kind": "same-size", "older": b"o", "newer": b"n", "path": b""}, "path"),
        ({"kind": "inconsistent", "older": b"o", "newer": b"n", "path": ["x" * 32]}, "hash 0"),
    ],
)
def test_decode_refuses_maps_that_are_not_evidence(value: object, message: str) -> None:
    with pytest.raises(EvidenceError, match=message):
        decode_evidence(encoding.encode(value))


def test_decode_refuses_non_canonical_bytes() -> None:
    data = encode_evidence(Evidence(kind="same-size", older=b"o", newer=b"n"))
    with pytest.raises(EncodingError):
        decode_evidence(data + b"\x00")
    with pytest.raises(EncodingError):
        decode_evidence(b"\x84" + data[1:].replace(b"\xa4kind", b"\xd9\x04kind"))


# --- properties and hostile input -------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_random_forks_give_checkable_evidence(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 40), label="newer size")
    m = data.draw(st.integers(1, n), label="older size")
    fork = data.draw(st.integers(0, m - 1), label="fork point")
    honest = honest_leaves(n)
    forked = forked_leaves(n, fork)
    # Either side of the pair may be the forked one; the newer tree's own
    # server gives the proof and the old subtree hash.
    if data.draw(st.booleans(), label="older is forked"):
        older_leaves, newer_leaves = forked[:m], honest
    else:
        older_leaves, newer_leaves = honest[:m], forked
    older, newer = signed(older_leaves), signed(newer_leaves)
    proof = prove_consistency(m, n, LeafHashes(newer_leaves))
    result = compare_checkpoints(older, newer, proof, old_subtree=root_of(newer_leaves[:m]))
    assert isinstance(result, Inconsistent), result
    check_evidence(result.evidence, SIGNER.verifier)
    assert decode_evidence(encode_evidence(result.evidence)) == result.evidence
    # Honest growth on either side is consistent.
    assert compare_checkpoints(signed(newer_leaves[:m]), newer, proof) == Consistent()
    if m < n:
        i = data.draw(st.integers(0, len(proof) - 1), label="garbled hash")
        bit = data.draw(st.integers(0, 255), label="garbled bit")
        bad = bytearray(proof[i])
        bad[bit // 8] ^= 1 << (bit % 8)
        garbled = [*proof[:i], bytes(bad), *proof[i + 1 :]]
        for old in (older, signed(newer_leaves[:m])):
            result = compare_checkpoints(old, newer, garbled, old_subtree=root_of(newer_leaves[:m]))
            assert isinstance(result, InvalidProof), result


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_to_decode(data: bytes) -> None:
    try:
        ev = decode_evidence(data)
    except ProtocolError:
        return
    assert encode_evidence(ev) == data
    with pytest.raises(EvidenceError):
        check_evidence(ev, SIGNER.verifier)


_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "kind": st.sampled_from(["same-size", "inconsistent"]) | _values,
            "older": st.binary(max_size=50) | _values,
            "newer": st.binary(max_size=50) | _values,
            "path": st.lists(st.binary(min_size=31, max_size=33), max_size=4) | _values,
            "extra": _values,
        },
    )
)
def test_random_maps_to_decode(value: dict) -> None:
    try:
        ev = decode_evidence(encoding.encode(value))
    except ProtocolError:
        return
    with pytest.raises(EvidenceError):
        check_evidence(ev, SIGNER.verifier)
