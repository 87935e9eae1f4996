"""RFC 9162 section 2.1 Merkle trees: hashes, roots, inclusion and consistency proofs.

A city log is a Merkle tree over its entries' bytes. Every hash is SHA-256 with a
one-byte domain separator, so a leaf can never pass for an interior node::

    leaf_hash(b"")              == 6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d
    root_of([])                 == EMPTY_ROOT == e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
    root_of([leaf_hash(b"")])   == 6e340b9c...  (a one-leaf tree's root is its leaf hash)

Storage is injected: proofs are generated from a :class:`HashReader`, whose one
method returns the hash of a complete subtree (``level``, ``index``), i.e. of the
``2**level`` leaves starting at leaf ``index * 2**level``. The node implements it over
its stored hashes; tests use :class:`LeafHashes`.

Proofs are lists of raw 32-byte hashes ordered leaf to root, exactly as RFC 9162
2.1.3.1 (``PATH``) and 2.1.4.1 (``PROOF``) produce them, and are checked with the
iterative algorithms of 2.1.3.2 and 2.1.4.2. :func:`consistency_roots` exposes the
2.1.4.2 computation itself, so equivocation evidence can show which two roots a
path rebuilds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Protocol

from protocol.errors import ProofError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MAX_TREE_SIZE",
    "CompactTree",
    "HashReader",
    "LeafHashes",
    "check_consistency",
    "check_inclusion",
    "consistency_roots",
    "leaf_hash",
    "node_hash",
    "prove_consistency",
    "prove_inclusion",
    "root_of",
    "tree_root",
]

HASH_SIZE = 32
# Sizes and indexes are uint64 on the wire of every tlog implementation; anything larger
# is refused before any arithmetic so a hostile number cannot make a check slow.
MAX_TREE_SIZE = 2**64 - 1

# RFC 9162 2.1.1: "The hash of an empty list is the hash of an empty string: MTH({}) = HASH()."
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """Hash of one entry's bytes as a leaf (also the entry's id)."""
    # RFC 9162 2.1.1: MTH({d(0)}) = HASH(0x00 || d(0))
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node from its two children's hashes."""
    # RFC 9162 2.1.1: MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


class HashReader(Protocol):
    """Where proofs and tiles get stored hashes from (the node: SQLite; tests: a list)."""

    def node(self, level: int, index: int) -> bytes:
        """Hash of the complete subtree of ``2**level`` leaves starting at leaf ``index * 2**level``."""
        ...


class LeafHashes(HashReader):
    """A :class:`HashReader` over an in-memory list of leaf hashes, for tests and small trees.

    Interior nodes are computed on first use and memoized level by level, left to
    right, so asking for every node of an n-leaf tree costs n hashes in total. The
    leaves are copied: nodes of complete subtrees never change, so the memo stays
    valid for any tree size up to ``len(self)``.
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes]) -> None:
        leaves = [bytes(h) for h in leaf_hashes]
        for i, h in enumerate(leaves):
            if len(h) != HASH_SIZE:
                raise ProofError(f"leaf hash {i}: {len(h)} bytes, expected {HASH_SIZE}")
        self._levels: list[list[bytes]] = [leaves]

    def __len__(self) -> int:
        return len(self._levels[0])

    def node(self, level: int, index: int) -> bytes:
        size = len(self._levels[0])
        if level < 0 or index < 0 or (index + 1) << level > size:
            raise ProofError(
                f"node (level {level}, index {index}) is not a complete subtree of the {size} leaves held"
            )
        levels = self._levels
        while len(levels) <= level:
            levels.append([])
        for lv in range(1, level + 1):
            row, below = levels[lv], levels[lv - 1]
            # Nodes are filled left to right, so the first `need` nodes of this level
            # cover exactly the leaves the requested node needs.
            need = (index + 1) << (level - lv)
            for i in range(len(row), need):
                row.append(node_hash(below[2 * i], below[2 * i + 1]))
        return levels[level][index]


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Root of the tree over these leaf hashes, by RFC 9162's recursive definition.

    Deliberately the textbook recursion (split at the largest power of two smaller than
    n): it is the reference the faster :class:`CompactTree` and tile code are tested
    against. The inputs may be hashes of any one level: ``2**k`` of them reduce to the
    node ``k`` levels up.
    """
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    return _mth(leaf_hashes, 0, n)


def _mth(hashes: Sequence[bytes], lo: int, hi: int) -> bytes:
    n = hi - lo
    if n == 1:
        return hashes[lo]
    k = _split(n)
    # RFC 9162 2.1.1: MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
    return node_hash(_mth(hashes, lo, lo + k), _mth(hashes, lo + k, hi))


def _split(n: int) -> int:
    """RFC 9162 2.1.1's k: the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProofError(f"{what}: expected an integer, got {type(value).__name__}")
    if not 0 <= value <= MAX_TREE_SIZE:
        raise ProofError(f"{what}: {value}, expected 0..{MAX_TREE_SIZE}")
    return value


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ProofError(f"{what}: expected bytes, got {type(value).__name__}")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise ProofError(f"{what}: {len(value)} bytes, expected {HASH_SIZE}")
    return value


def _check_path(path: object, expected: int, what: str) -> list[bytes]:
    if isinstance(path, (bytes, bytearray, memoryview, str)) or not isinstance(path, Sequence):
        raise ProofError(f"{what}: expected a sequence of hashes, got {type(path).__name__}")
    if len(path) != expected:
        raise ProofError(f"{what}: {len(path)} hashes, expected {expected}")
    return [_check_hash(h, f"{what} hash {i}") for i, h in enumerate(path)]


def _range_hash(lo: int, hi: int, reader: HashReader) -> bytes:
    """MTH(D[lo:hi]) for a range that starts on a boundary of its own largest subtree.

    Every range RFC 9162's PATH and SUBPROOF recursions name has that shape, so the
    hash folds from the complete subtrees of (hi - lo)'s binary decomposition.
    """
    parts: list[bytes] = []
    pos = lo
    for level in reversed(range((hi - lo).bit_length())):
        if (hi - lo) >> level & 1:
            parts.append(reader.node(level, pos >> level))
            pos += 1 << level
    h = parts[-1]
    for left in reversed(parts[:-1]):
        # RFC 9162 2.1.1: HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])), right edge folded first
        h = node_hash(left, h)
    return h


def tree_root(size: int, reader: HashReader) -> bytes:
    """Root of the first ``size`` leaves, from at most log2(size) stored subtree hashes."""
    _check_size(size, "tree size")
    if size == 0:
        return EMPTY_ROOT
    return _range_hash(0, size, reader)


# --- inclusion (RFC 9162 2.1.3) ---------------------------------------------------------


def prove_inclusion(index: int, size: int, reader: HashReader) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(index, D[size]): sibling hashes from the leaf up to the root."""
    _check_size(size, "tree size")
    _check_size(index, "leaf index")
    if index >= size:
        raise ProofError(f"leaf index {index}: outside a tree of size {size}")
    path: list[bytes] = []
    lo, hi, m = 0, size, index
    # The recursion descends root to leaf and appends on the way back up, so collect
    # siblings top-down and reverse at the end.
    while hi - lo > 1:
        k = _split(hi - lo)
        if m < k:
            # PATH(m, D[n]) = PATH(m, D[0:k]) : MTH(D[k:n])
            path.append(_range_hash(lo + k, hi, reader))
            hi = lo + k
        else:
            # PATH(m, D[n]) = PATH(m - k, D[k:n]) : MTH(D[0:k])
            path.append(_range_hash(lo, lo + k, reader))
            lo, m = lo + k, m - k
    path.reverse()
    return path


def _inclusion_steps(fn: int, sn: int) -> int:
    """How many hashes RFC 9162 2.1.3.2 consumes before sn reaches 0 (the proof's length)."""
    steps = 0
    while sn:
        if fn & 1 or fn == sn:
            if not fn & 1:
                while not fn & 1 and fn:
                    fn >>= 1
                    sn >>= 1
        fn >>= 1
        sn >>= 1
        steps += 1
    return steps


def check_inclusion(*, leaf: bytes, index: int, size: int, root: bytes, proof: Sequence[bytes]) -> None:
    """Check that ``leaf`` (a leaf hash, i.e. an entry id) is at ``index`` in the tree ``root`` of ``size``.

    Raises :class:`ProofError` unless the proof verifies by RFC 9162 2.1.3.2.
    """
    _check_size(size, "tree size")
    _check_size(index, "leaf index")
    leaf = _check_hash(leaf, "leaf hash")
    root = _check_hash(root, "root")
    # 2.1.3.2 step 1: leaf_index >= tree_size fails.
    if index >= size:
        raise ProofError(f"leaf index {index}: outside a tree of size {size}")
    # The algorithm below fails for a wrong-length path anyway; counting first gives
    # a clearer message and bounds the work on hostile input.
    path = _check_path(proof, _inclusion_steps(index, size - 1), "inclusion proof")
    # Step 2: fn = leaf_index, sn = tree_size - 1. Step 3: r = hash.
    fn, sn = index, size - 1
    r = leaf
    for p in path:
        # Step 4a: a proof longer than the tree is tall fails.
        if sn == 0:
            raise ProofError("inclusion proof: more hashes than the tree has levels")
        if fn & 1 or fn == sn:
            # Step 4b: r = HASH(0x01 || p || r)
            r = node_hash(p, r)
            if not fn & 1:
                while not fn & 1 and fn:
                    fn >>= 1
                    sn >>= 1
        else:
            # Step 4b otherwise: r = HASH(0x01 || r || p)
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # Step 5: sn == 0 and r == root.
    if sn != 0:
        raise ProofError("inclusion proof: fewer hashes than the tree has levels")
    if r != root:
        raise ProofError(f"inclusion proof: leaf {index} of {size} rebuilds a different root")


# --- consistency (RFC 9162 2.1.4) -------------------------------------------------------


def prove_consistency(old_size: int, new_size: int, reader: HashReader) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(old_size, D[new_size]).

    Empty when old_size is 0 or equals new_size. When old_size is a power of two the
    old root itself is left out (it is the verifier's own old root).
    """
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    if old_size > new_size:
        raise ProofError(f"old size {old_size}: larger than new size {new_size}")
    if old_size == 0 or old_size == new_size:
        return []
    path: list[bytes] = []
    lo, hi, m, complete = 0, new_size, old_size, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            # SUBPROOF(m, D[n], b) = SUBPROOF(m, D[0:k], b) : MTH(D[k:n])
            path.append(_range_hash(lo + k, hi, reader))
            hi = lo + k
        else:
            # SUBPROOF(m, D[n], b) = SUBPROOF(m - k, D[k:n], false) : MTH(D[0:k])
            path.append(_range_hash(lo, lo + k, reader))
            lo, m, complete = lo + k, m - k, False
    if not complete:
        # SUBPROOF(m, D[m], false) = {MTH(D[m])}; with b true it is {} (the old root).
        path.append(_range_hash(lo, hi, reader))
    path.reverse()
    return path


def _consistency_path_length(old_size: int, new_size: int) -> int:
    """Length of the full 2.1.4.2 path (after step 2 has prepended any old subtree hash)."""
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    return 1 + _inclusion_steps(fn, sn)


def consistency_roots(old_size: int, new_size: int, path: Sequence[bytes]) -> tuple[bytes, bytes]:
    """The RFC 9162 2.1.4.2 computation: which (old root, new root) this path rebuilds.

    ``path`` is given in full: when old_size is a power of two, the caller puts the
    old subtree's hash first (2.1.4.2 step 2), since an RFC proof leaves it out. Two
    signed checkpoints whose roots differ from what one path rebuilds, in exactly one
    position, are evidence that the log forked. Requires 0 < old_size < new_size.
    """
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    if not 0 < old_size < new_size:
        raise ProofError(f"consistency path: sizes {old_size} and {new_size}, expected 0 < old < new")
    hashes = _check_path(path, _consistency_path_length(old_size, new_size), "consistency path")
    # Step 3: fn = first - 1, sn = second - 1.
    fn, sn = old_size - 1, new_size - 1
    # Step 4: shift while LSB(fn) is set.
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5: fr and sr start at the first value of the path.
    fr = sr = hashes[0]
    # Step 6: for each subsequent value c.
    for c in hashes[1:]:
        # Step 6a: a path longer than the new tree is tall fails.
        if sn == 0:
            raise ProofError("consistency path: more hashes than the new tree has levels")
        if fn & 1 or fn == sn:
            # Step 6b: fr = HASH(0x01 || c || fr); sr = HASH(0x01 || c || sr)
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not fn & 1 and fn:
                    fn >>= 1
                    sn >>= 1
        else:
            # Step 6b otherwise: sr = HASH(0x01 || sr || c)
            sr = node_hash(sr, c)
        # Step 6c.
        fn >>= 1
        sn >>= 1
    # Step 7 (the sn part; the root comparisons are the caller's).
    if sn != 0:
        raise ProofError("consistency path: fewer hashes than the new tree has levels")
    return fr, sr


def check_consistency(
    *, old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree ``new_root`` of ``new_size`` extends the tree ``old_root`` of ``old_size``.

    Raises :class:`ProofError` unless the RFC 9162 2.1.4.2 verification succeeds. An
    old size of 0 is consistent with anything (empty proof required, old root not
    examined); equal sizes need an empty proof and equal roots.
    """
    _check_size(old_size, "old size")
    _check_size(new_size, "new size")
    old_root = _check_hash(old_root, "old root")
    new_root = _check_hash(new_root, "new root")
    if old_size > new_size:
        raise ProofError(f"old size {old_size}: larger than new size {new_size}")
    if old_size == new_size or old_size == 0:
        _check_path(proof, 0, "consistency proof")
        if old_size == new_size and old_root != new_root:
            raise ProofError(f"consistency proof: two different roots for size {old_size}")
        return
    # Step 1: an empty path fails.
    if isinstance(proof, Sequence) and len(proof) == 0:
        raise ProofError("consistency proof: empty, expected at least one hash")
    expected = _consistency_path_length(old_size, new_size)
    # Step 2: if first is an exact power of 2, prepend first_hash.
    if old_size & (old_size - 1) == 0:
        hashes = _check_path(proof, expected - 1, "consistency proof")
        hashes.insert(0, old_root)
    else:
        hashes = _check_path(proof, expected, "consistency proof")
    fr, sr = consistency_roots(old_size, new_size, hashes)
    # Step 7: fr == first_hash and sr == second_hash.
    if fr != old_root:
        raise ProofError(f"consistency proof: rebuilds a different root for old size {old_size}")
    if sr != new_root:
        raise ProofError(f"consistency proof: rebuilds a different root for new size {new_size}")


# --- compact tree -----------------------------------------------------------------------


class CompactTree:
    """The right edge of a tree: one hash per complete subtree of size's decomposition.

    Enough to append leaves and compute the root in O(log n), without the leaves.
    ``append`` reports every complete node it creates so the caller can store the
    ones it serves (level-0 leaf hashes and level-8q nodes for tiles).
    """

    __slots__ = ("_hashes", "_size")

    def __init__(self, *, size: int = 0, hashes: Sequence[bytes] = ()) -> None:
        _check_size(size, "compact tree size")
        want = size.bit_count()
        if len(hashes) != want:
            raise ProofError(f"compact tree: {len(hashes)} hashes, expected {want} for size {size}")
        self._size = size
        self._hashes = [_check_hash(h, f"compact tree hash {i}") for i, h in enumerate(hashes)]

    @classmethod
    def from_reader(cls, size: int, reader: HashReader) -> CompactTree:
        """The edge of the first ``size`` leaves, read from stored subtree hashes."""
        _check_size(size, "tree size")
        hashes = []
        pos = 0
        for level in reversed(range(size.bit_length())):
            if size >> level & 1:
                hashes.append(reader.node(level, pos >> level))
                pos += 1 << level
        return cls(size=size, hashes=hashes)

    @property
    def size(self) -> int:
        return self._size

    @property
    def hashes(self) -> tuple[bytes, ...]:
        """Subtree hashes, largest (leftmost) first."""
        return tuple(self._hashes)

    def copy(self) -> CompactTree:
        clone = CompactTree.__new__(CompactTree)
        clone._size = self._size
        clone._hashes = list(self._hashes)
        return clone

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return (level, index, hash) of every complete node created."""
        h = _check_hash(leaf, "leaf hash")
        if self._size == MAX_TREE_SIZE:
            raise ProofError(f"compact tree: full at size {MAX_TREE_SIZE}")
        level, index = 0, self._size
        created = [(0, index, h)]
        # Each trailing 1 bit of the old size is a complete subtree of the same height as
        # the one just finished, immediately to its left: merge them.
        bits = self._size
        while bits & 1:
            # RFC 9162 2.1.1: HASH(0x01 || left || right)
            h = node_hash(self._hashes.pop(), h)
            level += 1
            index >>= 1
            bits >>= 1
            created.append((level, index, h))
        self._hashes.append(h)
        self._size += 1
        return created

    def root(self) -> bytes:
        """The tree's root: the edge hashes folded right to left."""
        if not self._hashes:
            return EMPTY_ROOT
        h = self._hashes[-1]
        for left in reversed(self._hashes[:-1]):
            # RFC 9162 2.1.1: HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))
            h = node_hash(left, h)
        return h

    def __repr__(self) -> str:
        return f"CompactTree(size={self._size}, root={self.root().hex()[:16]}...)"
