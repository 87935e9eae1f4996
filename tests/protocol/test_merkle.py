"""protocol.merkle: RFC 9162 known answers, every small-tree proof, corruption, hostile input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import ProofError
from protocol.merkle import (
    EMPTY_ROOT,
    MAX_TREE_SIZE,
    CompactTree,
    LeafHashes,
    check_consistency,
    check_inclusion,
    consistency_roots,
    leaf_hash,
    node_hash,
    prove_consistency,
    prove_inclusion,
    root_of,
    tree_root,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "merkle"
TREE = json.loads((VECTORS / "tree-8-leaves.json").read_text())
INCLUSION = sorted(VECTORS.glob("inclusion-*.json"))
CONSISTENCY = sorted(VECTORS.glob("consistency-*.json"))

# One deterministic set of leaves serves every tree size: a complete subtree's hash
# does not depend on how many leaves follow it, so LeafHashes' memo is shared.
MAX_LEAVES = 3000
LEAVES = [leaf_hash(i.to_bytes(4, "big")) for i in range(MAX_LEAVES)]
READER = LeafHashes(LEAVES)


def _roots() -> list[bytes]:
    tree = CompactTree()
    roots = [tree.root()]
    for leaf in LEAVES:
        tree.append(leaf)
        roots.append(tree.root())
    return roots


ROOTS = _roots()  # ROOTS[n] = root of the first n leaves (cross-checked against root_of below)
SMALL = 64  # every (index, size) and (old, new) pair up to this size is checked


def h(hex_string: str) -> bytes:
    return bytes.fromhex(hex_string)


def flip(value: bytes, bit: int) -> bytes:
    """The value with one bit inverted."""
    b = bytearray(value)
    b[bit // 8 % len(b)] ^= 1 << (bit % 8)
    return bytes(b)


def _fails(**kwargs: object) -> bool:
    check = check_consistency if "old_size" in kwargs else check_inclusion
    try:
        check(**kwargs)
    except ProofError:
        return True
    return False


# --- hashing and roots: known answers --------------------------------------------------


def test_empty_root_is_sha256_of_nothing():
    assert EMPTY_ROOT.hex() == TREE["roots"][0]
    assert root_of([]) == EMPTY_ROOT
    assert CompactTree().root() == EMPTY_ROOT
    assert tree_root(0, READER) == EMPTY_ROOT


def test_reference_tree_leaf_and_node_hashes():
    leaves = [leaf_hash(h(x)) for x in TREE["leaf_inputs"]]
    assert [x.hex() for x in leaves] == TREE["node_hashes"][0]
    reader = LeafHashes(leaves)
    for level, row in enumerate(TREE["node_hashes"]):
        assert [reader.node(level, i).hex() for i in range(len(row))] == row
    # node_hash on its own, for level 1 node 0.
    assert node_hash(leaves[0], leaves[1]).hex() == TREE["node_hashes"][1][0]


def test_reference_tree_roots_for_every_size():
    leaves = [leaf_hash(h(x)) for x in TREE["leaf_inputs"]]
    reader = LeafHashes(leaves)
    tree = CompactTree()
    for size, want in enumerate(TREE["roots"]):
        assert root_of(leaves[:size]).hex() == want
        assert tree_root(size, reader).hex() == want
        assert tree.root().hex() == want
        assert CompactTree.from_reader(size, reader).root().hex() == want
        if size < len(leaves):
            tree.append(leaves[size])


# --- published proofs -------------------------------------------------------------------


@pytest.mark.parametrize("path", INCLUSION, ids=[p.stem for p in INCLUSION])
def test_inclusion_vector(path):
    v = json.loads(path.read_text())
    leaves = [leaf_hash(h(x)) for x in TREE["leaf_inputs"]]
    assert leaf_hash(h(v["leaf_input"])).hex() == v["leaf_hash"]
    proof = [h(x) for x in v["proof"]]
    assert prove_inclusion(v["index"], v["size"], LeafHashes(leaves)) == proof
    check_inclusion(leaf=h(v["leaf_hash"]), index=v["index"], size=v["size"], root=h(v["root"]), proof=proof)
    _assert_inclusion_probes_fail(h(v["leaf_hash"]), v["index"], v["size"], h(v["root"]), proof)


@pytest.mark.parametrize("path", CONSISTENCY, ids=[p.stem for p in CONSISTENCY])
def test_consistency_vector(path):
    v = json.loads(path.read_text())
    leaves = [leaf_hash(h(x)) for x in TREE["leaf_inputs"]]
    proof = [h(x) for x in v["proof"]]
    old, new = v["old_size"], v["new_size"]
    assert prove_consistency(old, new, LeafHashes(leaves)) == proof
    check_consistency(old_size=old, new_size=new, old_root=h(v["old_root"]), new_root=h(v["new_root"]), proof=proof)
    if proof:
        _assert_consistency_probes_fail(old, new, h(v["old_root"]), h(v["new_root"]), proof)


def _assert_inclusion_probes_fail(leaf, index, size, root, proof):
    """The corruptions transparency-dev/merkle's verify_test.go applies, all must fail."""
    some = h("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes = {
        "index - 1": dict(index=index - 1),
        "index + 1": dict(index=index + 1),
        "index ^ 2": dict(index=index ^ 2),
        "size * 2": dict(size=size * 2),
        "size // 2": dict(size=size // 2),
        "wrong leaf": dict(leaf=leaf_hash(b"WrongLeaf")),
        "empty root": dict(root=EMPTY_ROOT),
        "random root": dict(root=some),
        "trailing garbage": dict(proof=[*proof, b""]),
        "trailing root": dict(proof=[*proof, root]),
        "preceding garbage": dict(proof=[b"", *proof]),
        "preceding root": dict(proof=[root, *proof]),
    }
    for i in range(len(proof)):
        probes[f"proof[{i}] bit 3"] = dict(proof=[flip(p, 3) if j == i else p for j, p in enumerate(proof)])
    if proof:
        probes["removed component"] = dict(proof=proof[:-1])
    if len(proof) > 1:
        probes["inserted component"] = dict(proof=[proof[0], some, *proof[1:]])
    base = dict(leaf=leaf, index=index, size=size, root=root, proof=proof)
    wrongly_verified = [name for name, change in probes.items() if not _fails(**{**base, **change})]
    assert wrongly_verified == []


def _assert_consistency_probes_fail(old, new, old_root, new_root, proof):
    probes = {
        "old - 1": dict(old_size=old - 1),
        "old + 1": dict(old_size=old + 1),
        "old ^ 2": dict(old_size=old ^ 2),
        "new * 2": dict(new_size=new * 2),
        "new // 2": dict(new_size=new // 2),
        "wrong old root": dict(old_root=leaf_hash(b"WrongRoot")),
        "wrong new root": dict(new_root=leaf_hash(b"WrongRoot")),
        "swapped roots": dict(old_root=new_root, new_root=old_root),
        "empty proof": dict(proof=[]),
        "trailing garbage": dict(proof=[*proof, b""]),
        "trailing old root": dict(proof=[*proof, old_root]),
        "trailing new root": dict(proof=[*proof, new_root]),
        "preceding garbage": dict(proof=[b"", *proof]),
        "preceding old root": dict(proof=[old_root, *proof]),
        "preceding new root": dict(proof=[new_root, *proof]),
        "preceding proof[0]": dict(proof=[proof[0], *proof]),
        "truncated": dict(proof=proof[:-1]),
    }
    for i in range(len(proof)):
        probes[f"proof[{i}] bit 4"] = dict(proof=[flip(p, 4) if j == i else p for j, p in enumerate(proof)])
    base = dict(old_size=old, new_size=new, old_root=old_root, new_root=new_root, proof=proof)
    wrongly_verified = [name for name, change in probes.items() if not _fails(**{**base, **change})]
    assert wrongly_verified == []


# --- every proof of every small tree ------------------------------------------------------


def test_roots_agree_with_reference_definition():
    for size in [*range(SMALL + 1), 255, 256, 257, 1000, 1023, 1024, 1025, MAX_LEAVES]:
        assert ROOTS[size] == root_of(LEAVES[:size]) == tree_root(size, READER), size


def test_every_small_inclusion_proof_verifies_and_every_corruption_fails():
    for size in range(1, SMALL + 1):
        for index in range(size):
            proof = prove_inclusion(index, size, READER)
            check_inclusion(leaf=LEAVES[index], index=index, size=size, root=ROOTS[size], proof=proof)
            for i, p in enumerate(proof):
                bad = [*proof[:i], flip(p, 7 * index + i), *proof[i + 1 :]]
                assert _fails(leaf=LEAVES[index], index=index, size=size, root=ROOTS[size], proof=bad)
            for other in range(size):
                if other != index:
                    assert _fails(leaf=LEAVES[index], index=other, size=size, root=ROOTS[size], proof=proof)


def test_every_small_consistency_proof_verifies_and_every_corruption_fails():
    for new in range(SMALL + 1):
        for old in range(new + 1):
            proof = prove_consistency(old, new, READER)
            check_consistency(old_size=old, new_size=new, old_root=ROOTS[old], new_root=ROOTS[new], proof=proof)
            if not 0 < old < new:
                assert proof == []
                continue
            for i, p in enumerate(proof):
                bad = [*proof[:i], flip(p, 5 * old + i), *proof[i + 1 :]]
                assert _fails(old_size=old, new_size=new, old_root=ROOTS[old], new_root=ROOTS[new], proof=bad)
            for other in range(1, new):
                if other != old:
                    assert _fails(
                        old_size=other, new_size=new, old_root=ROOTS[other], new_root=ROOTS[new], proof=proof
                    )


def test_consistency_roots_rebuilds_both_roots_from_the_full_path():
    for new in range(2, SMALL + 1):
        for old in range(1, new):
            proof = prove_consistency(old, new, READER)
            full = [ROOTS[old], *proof] if old & (old - 1) == 0 else proof
            assert consistency_roots(old, new, full) == (ROOTS[old], ROOTS[new])


def test_consistency_roots_with_a_forged_old_subtree_shows_the_fork():
    # A path whose first hash is not the old root rebuilds a different old root: this
    # is what equivocation evidence for a power-of-two old size carries.
    old, new = 4, 8
    forged = leaf_hash(b"other history")
    path = [forged, *prove_consistency(old, new, READER)]
    got_old, got_new = consistency_roots(old, new, path)
    assert got_old == forged != ROOTS[old]
    assert got_new != ROOTS[new]


def test_consistency_roots_rejects_wrong_lengths_and_sizes():
    proof = prove_consistency(6, 8, READER)
    for bad in ([], proof[:-1], [*proof, proof[0]]):
        with pytest.raises(ProofError, match="consistency path: .* hashes, expected 3"):
            consistency_roots(6, 8, bad)
    for old, new in [(0, 8), (8, 8), (9, 8)]:
        with pytest.raises(ProofError, match="expected 0 < old < new"):
            consistency_roots(old, new, proof)


# --- edge cases of the checks -------------------------------------------------------------


def test_old_size_zero_is_consistent_with_any_tree_but_needs_an_empty_proof():
    check_consistency(old_size=0, new_size=5, old_root=EMPTY_ROOT, new_root=ROOTS[5], proof=[])
    check_consistency(old_size=0, new_size=0, old_root=EMPTY_ROOT, new_root=EMPTY_ROOT, proof=[])
    with pytest.raises(ProofError, match="1 hashes, expected 0"):
        check_consistency(old_size=0, new_size=5, old_root=EMPTY_ROOT, new_root=ROOTS[5], proof=[EMPTY_ROOT])


def test_equal_sizes_need_equal_roots_and_an_empty_proof():
    check_consistency(old_size=5, new_size=5, old_root=ROOTS[5], new_root=ROOTS[5], proof=[])
    with pytest.raises(ProofError, match="two different roots for size 5"):
        check_consistency(old_size=5, new_size=5, old_root=ROOTS[5], new_root=ROOTS[6], proof=[])
    with pytest.raises(ProofError, match="expected 0"):
        check_consistency(old_size=5, new_size=5, old_root=ROOTS[5], new_root=ROOTS[5], proof=[ROOTS[5]])


def test_time_travel_is_refused():
    with pytest.raises(ProofError, match="old size 6: larger than new size 5"):
        check_consistency(old_size=6, new_size=5, old_root=ROOTS[6], new_root=ROOTS[5], proof=[])
    with pytest.raises(ProofError, match="larger than new size"):
        prove_consistency(6, 5, READER)


def test_empty_consistency_proof_for_growth_fails():
    with pytest.raises(ProofError, match="empty"):
        check_consistency(old_size=1, new_size=2, old_root=ROOTS[1], new_root=ROOTS[2], proof=[])


def test_inclusion_outside_the_tree_is_refused():
    with pytest.raises(ProofError, match="leaf index 3: outside a tree of size 3"):
        prove_inclusion(3, 3, READER)
    with pytest.raises(ProofError, match="outside a tree of size 0"):
        check_inclusion(leaf=LEAVES[0], index=0, size=0, root=EMPTY_ROOT, proof=[])


def test_single_leaf_tree_root_is_its_leaf_hash():
    check_inclusion(leaf=LEAVES[0], index=0, size=1, root=LEAVES[0], proof=[])
    with pytest.raises(ProofError, match="rebuilds a different root"):
        check_inclusion(leaf=LEAVES[1], index=0, size=1, root=LEAVES[0], proof=[])


def test_reader_refuses_nodes_beyond_its_leaves():
    reader = LeafHashes(LEAVES[:5])
    assert reader.node(2, 0) == READER.node(2, 0)
    for level, index in [(0, 5), (1, 2), (3, 0), (-1, 0), (0, -1)]:
        with pytest.raises(ProofError, match="not a complete subtree of the 5 leaves"):
            reader.node(level, index)
    with pytest.raises(ProofError, match="not a complete subtree"):
        prove_inclusion(0, 6, reader)


# --- CompactTree ------------------------------------------------------------------------


def test_compact_tree_creates_every_complete_node_exactly_once():
    tree = CompactTree()
    created = []
    for size, leaf in enumerate(LEAVES[: 2 * SMALL + 3]):
        nodes = tree.append(leaf)
        assert nodes[0] == (0, size, leaf)
        created.extend(nodes)
    n = tree.size
    expected = [(lv, i) for lv in range(n.bit_length()) for i in range(n >> lv)]
    assert sorted((lv, i) for lv, i, _ in created) == sorted(expected)
    for level, index, value in created:
        assert value == READER.node(level, index)


def test_compact_tree_copy_is_independent():
    tree = CompactTree.from_reader(10, READER)
    clone = tree.copy()
    clone.append(LEAVES[10])
    assert (tree.size, tree.root()) == (10, ROOTS[10])
    assert (clone.size, clone.root()) == (11, ROOTS[11])


def test_compact_tree_restores_from_its_hashes():
    tree = CompactTree.from_reader(13, READER)
    assert len(tree.hashes) == 3  # 13 = 8 + 4 + 1
    again = CompactTree(size=13, hashes=tree.hashes)
    again.append(LEAVES[13])
    assert again.root() == ROOTS[14]
    with pytest.raises(ProofError, match="2 hashes, expected 3 for size 13"):
        CompactTree(size=13, hashes=tree.hashes[:2])
    with pytest.raises(ProofError, match="leaf hash: 3 bytes, expected 32"):
        again.append(b"abc")


@settings(max_examples=60, deadline=None)
@given(size=st.integers(0, MAX_LEAVES))
def test_compact_tree_root_matches_reference(size):
    tree = CompactTree()
    for leaf in LEAVES[:size]:
        tree.append(leaf)
    assert tree.size == size
    assert tree.root() == root_of(LEAVES[:size])
    assert CompactTree.from_reader(size, READER).hashes == tree.hashes


# --- property tests over larger trees -----------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_inclusion_proofs_verify_and_any_tampering_fails(data):
    size = data.draw(st.integers(1, MAX_LEAVES), label="size")
    index = data.draw(st.integers(0, size - 1), label="index")
    proof = prove_inclusion(index, size, READER)
    leaf, root = LEAVES[index], ROOTS[size]
    check_inclusion(leaf=leaf, index=index, size=size, root=root, proof=proof)

    bit = st.integers(0, 255)
    for i in range(len(proof)):
        bad = [*proof[:i], flip(proof[i], data.draw(bit)), *proof[i + 1 :]]
        assert _fails(leaf=leaf, index=index, size=size, root=root, proof=bad)
    assert _fails(leaf=flip(leaf, data.draw(bit)), index=index, size=size, root=root, proof=proof)
    assert _fails(leaf=leaf, index=index, size=size, root=flip(root, data.draw(bit)), proof=proof)
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other index")
        assert _fails(leaf=leaf, index=other, size=size, root=root, proof=proof)
    # A proof for one tree size proves nothing about another tree, whatever its root.
    other_size = data.draw(st.integers(index + 1, MAX_LEAVES).filter(lambda s: s != size), label="other size")
    assert _fails(leaf=leaf, index=index, size=other_size, root=ROOTS[other_size], proof=proof)
    assert _fails(leaf=leaf, index=index, size=other_size, root=root, proof=proof) or (
        # The one legitimate exception: same index, same shape of path (e.g. index 0 in
        # sizes 3 and 4). The proof's hashes then still rebuild `root`, the old size's.
        len(prove_inclusion(index, other_size, READER)) == len(proof)
    )


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_consistency_proofs_verify_and_any_tampering_fails(data):
    new = data.draw(st.integers(2, MAX_LEAVES), label="new")
    old = data.draw(st.integers(1, new - 1), label="old")
    proof = prove_consistency(old, new, READER)
    base = dict(old_size=old, new_size=new, old_root=ROOTS[old], new_root=ROOTS[new], proof=proof)
    check_consistency(**base)

    bit = st.integers(0, 255)
    for i in range(len(proof)):
        bad = [*proof[:i], flip(proof[i], data.draw(bit)), *proof[i + 1 :]]
        assert _fails(**{**base, "proof": bad})
    assert _fails(**{**base, "old_root": flip(ROOTS[old], data.draw(bit))})
    assert _fails(**{**base, "new_root": flip(ROOTS[new], data.draw(bit))})
    other_old = data.draw(st.integers(1, new - 1).filter(lambda s: s != old), label="other old") if new > 2 else None
    if other_old is not None:
        assert _fails(**{**base, "old_size": other_old, "old_root": ROOTS[other_old]})
    other_new = data.draw(st.integers(old + 1, MAX_LEAVES).filter(lambda s: s != new), label="other new")
    assert _fails(**{**base, "new_size": other_new, "new_root": ROOTS[other_new]})


# --- hostile input ----------------------------------------------------------------------

junk_hash = st.one_of(st.binary(max_size=40), st.just(b"\x00" * 32), st.none(), st.integers(), st.text(max_size=4))
junk_size = st.one_of(st.integers(-5, 2**65), st.booleans(), st.none(), st.just(MAX_TREE_SIZE))
junk_proof = st.one_of(st.lists(junk_hash, max_size=70), st.none(), st.binary(max_size=64), st.text(max_size=4))


@settings(max_examples=300, deadline=None)
@given(leaf=junk_hash, index=junk_size, size=junk_size, root=junk_hash, proof=junk_proof)
def test_check_inclusion_hostile_input_raises_only_proof_error(leaf, index, size, root, proof):
    try:
        check_inclusion(leaf=leaf, index=index, size=size, root=root, proof=proof)
    except ProofError:
        return
    # Only a one-leaf tree can verify without finding a SHA-256 preimage.
    assert (index, size, proof) == (0, 1, []) and leaf == root


@settings(max_examples=300, deadline=None)
@given(old=junk_size, new=junk_size, old_root=junk_hash, new_root=junk_hash, proof=junk_proof)
def test_check_consistency_hostile_input_raises_only_proof_error(old, new, old_root, new_root, proof):
    try:
        check_consistency(old_size=old, new_size=new, old_root=old_root, new_root=new_root, proof=proof)
    except ProofError:
        return
    # Only the trivially consistent cases may pass, with well-formed hashes.
    assert old == 0 or (old == new and old_root == new_root)
    assert proof == []


@settings(max_examples=200, deadline=None)
@given(old=junk_size, new=junk_size, path=junk_proof)
def test_consistency_roots_hostile_input_raises_only_proof_error(old, new, path):
    try:
        consistency_roots(old, new, path)
    except ProofError:
        return
    assert 0 < old < new  # well-formed by chance: then it just computes two hashes


@settings(max_examples=100, deadline=None)
@given(size=junk_size, index=junk_size)
def test_proof_generation_hostile_sizes_raise_only_proof_error(size, index):
    try:
        prove_inclusion(index, size, READER)
        prove_consistency(index, size, READER)
    except ProofError:
        return
    assert 0 <= index < size <= MAX_LEAVES
