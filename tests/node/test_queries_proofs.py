"""node.queries.inclusion_proof and _TileReader: proofs from stored tile hashes, tiles kept in a Memo.

The reader must give exactly the proofs ``protocol.merkle`` computes from every
leaf hash, for every tree shape (tiles full or partial, at the leaves and above),
whether the tiles it keeps were rebuilt for this proof or kept from another tree
of the same log; and it must never use a tile kept for different stored hashes.
"""

from __future__ import annotations

import hashlib

import pytest

from node.errors import StorageError
from node.queries import Memo, _TileReader, inclusion_proof
from protocol.merkle import LeafHashes, check_inclusion, prove_inclusion, root_of


def leaves(n: int, salt: bytes = b"") -> list[bytes]:
    return [hashlib.sha256(salt + i.to_bytes(8, "big")).digest() for i in range(n)]


class FakeStore:
    """``Store.stored_hashes`` over a list of leaf hashes: levels 0, 8, 16, ... as node.store keeps them."""

    def __init__(self, leaf_hashes: list[bytes]) -> None:
        self.tree = LeafHashes(leaf_hashes)
        self.size = len(leaf_hashes)
        self.reads: list[tuple[int, int, int]] = []
        self.corrupt: dict[tuple[int, int], bytes] = {}

    def stored_hashes(self, lid: int, level: int, start: int, count: int) -> list[bytes]:
        assert level % 8 == 0
        assert count >= 1 and (start + count) << level <= self.size, (level, start, count)
        self.reads.append((level, start, count))
        return [self.corrupt.get((level, i), self.tree.node(level, i)) for i in range(start, start + count)]


SIZES = [1, 2, 3, 15, 16, 17, 255, 256, 257, 300, 511, 512, 513, 4097, 5000]


@pytest.mark.parametrize("size", SIZES, ids=[f"size-{n}" for n in SIZES])
def test_every_proof_equals_the_proof_from_all_leaves(size):
    hashes = leaves(size)
    store, reference = FakeStore(hashes), LeafHashes(hashes)
    root = root_of(hashes)
    tiles = Memo(1024)
    indexes = range(size) if size <= 600 else range(0, size, 7)
    for _ in range(2):  # tiles rebuilt, then kept
        for i in indexes:
            expected = prove_inclusion(i, size, reference)
            assert prove_inclusion(i, size, _TileReader(store, 1, size, root, tiles)) == expected, i
            proof = inclusion_proof(store, 1, i, size, root, tiles)
            assert proof == expected, i
            check_inclusion(leaf=hashes[i], index=i, size=size, root=root, proof=proof)
    # Without a memo (or a root), the same proofs, only slower.
    for i in list(indexes)[:50]:
        assert prove_inclusion(i, size, _TileReader(store, 1, size)) == prove_inclusion(i, size, reference)


def test_a_tree_above_the_second_stored_level():
    size = 65_536 + 300  # level-16 hashes stored, the level-8 row above the leaves full, then a partial one
    hashes = leaves(size)
    store, reference, root = FakeStore(hashes), LeafHashes(hashes), root_of(hashes)
    tiles = Memo(1024)
    for i in [0, 1, 255, 256, 4097, 65_535, 65_536, 65_600, size - 1]:
        expected = prove_inclusion(i, size, reference)
        assert prove_inclusion(i, size, _TileReader(store, 1, size, root, tiles)) == expected
        assert inclusion_proof(store, 1, i, size, root, tiles) == expected


def test_a_kept_tile_costs_one_short_read_per_proof():
    size = 5000
    store = FakeStore(leaves(size))
    root, tiles = root_of(leaves(size)), Memo(1024)
    inclusion_proof(store, 1, 1000, size, root, tiles)
    store.reads.clear()
    inclusion_proof(store, 1, 1001, size, root, tiles)
    assert store.reads == [(0, 992, 16)]  # the 16 leaves around it; everything else is kept


def test_a_growing_log_reuses_full_tiles_and_rebuilds_its_right_edge():
    hashes = leaves(1000)
    store, tiles = FakeStore(hashes), Memo(1024)
    for size in (600, 700, 1000):
        grown = FakeStore(hashes[:size])
        grown.tree = store.tree  # the same stored hashes, as a log that grew
        grown.size = size
        root = root_of(hashes[:size])
        for i in (0, 300, 599, size - 1):
            proof = inclusion_proof(grown, 1, i, size, root, tiles)
            assert proof == prove_inclusion(i, size, LeafHashes(hashes[:size])), (size, i)


def test_bug_a_tile_kept_before_a_truncation_is_never_used_after_it():
    size = 600
    before, after = leaves(size), leaves(256) + leaves(size - 256, salt=b"rewritten")
    tiles = Memo(1024)
    for hashes in (before, after):
        store, root = FakeStore(hashes), root_of(hashes)
        for i in (10, 300, 599):
            assert inclusion_proof(store, 1, i, size, root, tiles) == prove_inclusion(i, size, LeafHashes(hashes))


def test_a_stored_hash_that_does_not_match_its_tile_is_a_storage_error():
    size = 600
    store = FakeStore(leaves(size))
    store.corrupt[(8, 1)] = b"\x00" * 32  # the stored hash of the second full tile
    with pytest.raises(StorageError, match="do not hash to the stored level-8 hash"):
        inclusion_proof(store, 1, 300, size, root_of(leaves(size)), Memo(1024))


def test_tiles_kept_are_bounded_by_bytes():
    size = 256 * 40
    hashes = leaves(size)
    store, root = FakeStore(hashes), root_of(hashes)
    tiles = Memo(10_000, max_bytes=20_000)
    for i in range(0, size, 256):
        inclusion_proof(store, 1, i, size, root, tiles)
    assert 0 < tiles.bytes <= 20_000
    assert len(tiles) < 40
