"""C2SP tlog-tiles: tile coordinates and paths, hash tiles, entry bundles (tile height 8).

A log is served as static files below its prefix URL. A hash tile at level L holds up
to 256 consecutive node hashes of tree level 8*L; a full tile has 256 (8,192 bytes),
the rightmost tiles of a tree are partial and carry their width in the path::

    tile/0/x001/x234/067        full level-0 tile 1234067: leaf hashes 315921152 .. 315921407
    tile/1/005.p/17             partial level-1 tile 5, 17 hashes of tree level 8
    tile/entries/000.p/3        the first three entries, as an entry bundle

An index is written in zero-padded groups of three digits, all but the last prefixed
with "x" (1234067 -> "x001/x234/067", 5 -> "005"); levels and widths are plain
decimal without leading zeros. Parsing accepts exactly one spelling per tile.

An entry bundle is each entry as a big-endian uint16 length followed by its bytes::

    encode_bundle([b"ab", b""]) == b"\\x00\\x02ab\\x00\\x00"

Hashes come from a :class:`protocol.merkle.HashReader`; nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from protocol.errors import TileError, preview
from protocol.merkle import EMPTY_ROOT, HashReader, node_hash, root_of

__all__ = [
    "HASH_SIZE",
    "MAX_BUNDLE_ENTRY",
    "MAX_LEVEL",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "Tile",
    "bundle_tiles",
    "decode_bundle",
    "edge_tiles",
    "encode_bundle",
    "format_tile_index",
    "full_tile_hash",
    "parse_tile_index",
    "parse_tile_path",
    "read_tile",
    "root_from_edge_tiles",
    "tile_for_size",
    "tile_hashes",
    "tile_path",
]

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH_SIZE = 32
MAX_LEVEL = 63  # C2SP tlog-tiles: <L> is between 0 and 63
MAX_INDEX = 2**64 - 1  # tree sizes are uint64, so no tile index can be larger
MAX_BUNDLE_ENTRY = 0xFFFF  # uint16 length prefix
_MAX_BUNDLE_SIZE = TILE_WIDTH * (2 + MAX_BUNDLE_ENTRY)
_MAX_INDEX_GROUPS = len(str(MAX_INDEX)) // 3 + 1
_MAX_PATH_LENGTH = 128

# Shape only; the numeric limits and the canonical first group are checked after matching.
# re.ASCII keeps \d-like classes from matching other scripts' digits, and fullmatch
# (unlike $) refuses a trailing newline.
_PATH_RE = re.compile(
    r"tile/(?:(?P<entries>entries)|(?P<level>0|[1-9][0-9]?))"
    r"/(?P<index>(?:x[0-9]{3}/)*[0-9]{3})"
    r"(?:\.p/(?P<width>[1-9][0-9]{0,2}))?",
    re.ASCII,
)
_INDEX_RE = re.compile(r"(?:x[0-9]{3}/)*[0-9]{3}", re.ASCII)


def _check_int(value: object, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TileError(f"{what}: expected an integer, got {type(value).__name__}")
    if not lo <= value <= hi:
        raise TileError(f"{what}: {value}, expected {lo}..{hi}")
    return value


def _check_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise TileError(f"{what}: expected bytes, got {type(value).__name__}")
    return bytes(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class Tile:
    """One tile coordinate: a hash tile (level, index, width) or an entry bundle.

    ``width`` is the number of hashes (or entries) in it, 256 for a full tile. For entry
    bundles ``level`` has no meaning and is always 0, so equal bundles compare equal.
    """

    level: int
    index: int
    width: int
    entries: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.entries, bool):
            raise TileError(f"tile entries: expected a bool, got {type(self.entries).__name__}")
        _check_int(self.level, "tile level", 0, 0 if self.entries else MAX_LEVEL)
        _check_int(self.index, "tile index", 0, MAX_INDEX)
        _check_int(self.width, "tile width", 1, TILE_WIDTH)

    @property
    def is_full(self) -> bool:
        return self.width == TILE_WIDTH


def format_tile_index(n: int) -> str:
    """C2SP tlog-tiles <N>: 3-digit groups, all but the last prefixed "x" (5 -> "005")."""
    _check_int(n, "tile index", 0, MAX_INDEX)
    digits = str(n)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join(["x" + g for g in groups[:-1]] + groups[-1:])


def parse_tile_index(s: str) -> int:
    """Inverse of :func:`format_tile_index`; TileError for any other spelling."""
    if not isinstance(s, str):
        raise TileError(f"tile index: expected a string, got {type(s).__name__}")
    if len(s) > _MAX_PATH_LENGTH or not _INDEX_RE.fullmatch(s):
        raise TileError(f"tile index: {preview(s)}, expected groups like x001/x234/067")
    return _index_value(s)


def _index_value(s: str) -> int:
    groups = s.split("/")
    if len(groups) > _MAX_INDEX_GROUPS:
        raise TileError(f"tile index: {len(groups)} groups, expected at most {_MAX_INDEX_GROUPS}")
    if len(groups) > 1 and groups[0] == "x000":
        # "x000/005" and "005" would name the same tile; only the shortest is canonical.
        raise TileError(f"tile index: {preview(s)} has a leading zero group")
    value = int("".join(g.removeprefix("x") for g in groups))
    if value > MAX_INDEX:
        raise TileError(f"tile index: {value}, expected at most {MAX_INDEX}")
    return value


def tile_path(tile: Tile) -> str:
    """The tile's path below the log prefix: "tile/0/x001/x234/067.p/5", "tile/entries/005"."""
    kind = "entries" if tile.entries else str(tile.level)
    path = f"tile/{kind}/{format_tile_index(tile.index)}"
    if tile.width < TILE_WIDTH:
        path += f".p/{tile.width}"
    return path


def parse_tile_path(path: str) -> Tile:
    """Inverse of :func:`tile_path`; TileError for every non-canonical or out-of-range path."""
    if not isinstance(path, str):
        raise TileError(f"tile path: expected a string, got {type(path).__name__}")
    if len(path) > _MAX_PATH_LENGTH:
        raise TileError(f"tile path: {len(path)} characters, expected at most {_MAX_PATH_LENGTH}")
    m = _PATH_RE.fullmatch(path)
    if m is None:
        raise TileError(f"tile path: {preview(path)}, expected tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
    level = 0 if m["entries"] else int(m["level"])
    if level > MAX_LEVEL:
        raise TileError(f"tile path: level {level}, expected 0..{MAX_LEVEL}")
    width = TILE_WIDTH
    if m["width"] is not None:
        width = int(m["width"])
        # A full tile is never spelled with .p/256: C2SP tlog-tiles allows W from 1 to 255.
        if width >= TILE_WIDTH:
            raise TileError(f"tile path: partial width {width}, expected 1..{TILE_WIDTH - 1}")
    return Tile(level=level, index=_index_value(m["index"]), width=width, entries=bool(m["entries"]))


# --- which tiles a tree has -------------------------------------------------------------


def tile_for_size(level: int, index: int, size: int, *, entries: bool = False) -> Tile | None:
    """The tile at (level, index) as it is for a tree of ``size`` leaves; None if empty.

    Level L holds the hashes of tree level 8L: there are size >> 8L of them, so the tile
    is full if all its 256 slots are below that count and partial otherwise.
    """
    _check_int(level, "tile level", 0, 0 if entries else MAX_LEVEL)
    _check_int(index, "tile index", 0, MAX_INDEX)
    _check_int(size, "tree size", 0, MAX_INDEX)
    count = size >> (TILE_HEIGHT * level)
    start = index * TILE_WIDTH
    if count <= start:
        return None
    return Tile(level=level, index=index, width=min(TILE_WIDTH, count - start), entries=entries)


def edge_tiles(size: int) -> list[Tile]:
    """The partial hash tiles of a tree, lowest level first: all that its root needs.

    C2SP tlog-tiles: the partial tile at level l of a tree of size s has
    floor(s / 256**l) mod 256 hashes. Levels where that is 0 have no partial tile.
    """
    _check_int(size, "tree size", 0, MAX_INDEX)
    tiles = []
    level = 0
    count = size
    while count:
        width = count % TILE_WIDTH
        if width:
            tiles.append(Tile(level=level, index=count // TILE_WIDTH, width=width))
        count >>= TILE_HEIGHT
        level += 1
    return tiles


def bundle_tiles(size: int, *, old_size: int = 0) -> list[Tile]:
    """The entry bundles holding entries old_size .. size-1 of a tree of ``size`` (all by default)."""
    _check_int(size, "tree size", 0, MAX_INDEX)
    _check_int(old_size, "old size", 0, size)
    if old_size == size:
        return []
    last = (size - 1) // TILE_WIDTH
    return [
        Tile(level=0, index=n, width=min(TILE_WIDTH, size - n * TILE_WIDTH), entries=True)
        for n in range(old_size // TILE_WIDTH, last + 1)
    ]


# --- hash tiles -------------------------------------------------------------------------


def read_tile(tile: Tile, reader: HashReader) -> bytes:
    """The tile's bytes: hashes of tree level 8*level, indexes index*256 .. index*256+width-1."""
    if tile.entries:
        raise TileError(f"tile {tile_path(tile)}: an entry bundle, not a hash tile")
    level = TILE_HEIGHT * tile.level
    start = tile.index * TILE_WIDTH
    return b"".join(reader.node(level, start + i) for i in range(tile.width))


def tile_hashes(data: bytes, width: int) -> list[bytes]:
    """Split a hash tile's bytes into its ``width`` hashes."""
    _check_int(width, "tile width", 1, TILE_WIDTH)
    data = _check_bytes(data, "tile data")
    if len(data) != width * HASH_SIZE:
        raise TileError(f"tile data: {len(data)} bytes, expected {width * HASH_SIZE} for width {width}")
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def full_tile_hash(data: bytes) -> bytes:
    """The node a full tile's 256 hashes reduce to: what its parent tile holds at slot index % 256.

    C2SP tlog-tiles: "each hash in a tile is the Merkle Tree Hash of a full tile at the
    level below"; 256 = 2**8 hashes of tree level 8L make one node of level 8(L+1).
    """
    return root_of(tile_hashes(data, TILE_WIDTH))


def root_from_edge_tiles(size: int, tiles: Mapping[Tile, bytes]) -> bytes:
    """Root of a tree of ``size`` leaves from its partial tiles (``edge_tiles(size)``) alone.

    The root folds the complete subtrees of size's binary decomposition (RFC 9162 2.1.1).
    Bits 8q..8q+7 of size are the width of the partial tile at level q, and the
    subtrees those bits stand for are made of consecutive hashes in that tile, largest
    first. Other entries in ``tiles`` are ignored.
    """
    _check_int(size, "tree size", 0, MAX_INDEX)
    if size == 0:
        return EMPTY_ROOT
    subtrees: list[bytes] = []
    for tile in reversed(edge_tiles(size)):
        try:
            data = tiles[tile]
        except KeyError:
            raise TileError(f"edge tile {tile_path(tile)}: missing, needed for size {size}") from None
        hashes = tile_hashes(data, tile.width)
        pos = 0
        for bit in reversed(range(TILE_HEIGHT)):
            if tile.width >> bit & 1:
                # 2**bit hashes of tree level 8q reduce to one node of level 8q+bit.
                subtrees.append(root_of(hashes[pos : pos + (1 << bit)]))
                pos += 1 << bit
    root = subtrees[-1]
    for left in reversed(subtrees[:-1]):
        # RFC 9162 2.1.1: HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])), right edge folded first
        root = node_hash(left, root)
    return root


# --- entry bundles ----------------------------------------------------------------------


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    """C2SP tlog-tiles entry bundle: each entry as big-endian uint16 length || bytes.

    Body bundles use the same framing; an empty item there means an erased body.
    """
    if isinstance(entries, (bytes, bytearray, memoryview, str)) or not isinstance(entries, Sequence):
        raise TileError(f"bundle: expected a sequence of entries, got {type(entries).__name__}")
    if not 1 <= len(entries) <= TILE_WIDTH:
        raise TileError(f"bundle: {len(entries)} entries, expected 1..{TILE_WIDTH}")
    out = bytearray()
    for i, entry in enumerate(entries):
        entry = _check_bytes(entry, f"bundle entry {i}")
        if len(entry) > MAX_BUNDLE_ENTRY:
            raise TileError(f"bundle entry {i}: {len(entry)} bytes, expected at most {MAX_BUNDLE_ENTRY}")
        out += len(entry).to_bytes(2, "big")
        out += entry
    return bytes(out)


def decode_bundle(data: bytes, *, count: int | None = None) -> list[bytes]:
    """Split an entry bundle into entries; ``count`` (the tile's width) when known.

    Rejects truncation, bytes after the last entry, an empty bundle, more than 256
    entries, and a number of entries other than ``count``.
    """
    data = _check_bytes(data, "bundle")
    if count is not None:
        _check_int(count, "bundle count", 1, TILE_WIDTH)
    if len(data) > _MAX_BUNDLE_SIZE:
        raise TileError(f"bundle: {len(data)} bytes, expected at most {_MAX_BUNDLE_SIZE}")
    view = memoryview(data)
    entries: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        i = len(entries)
        if count is not None and i == count:
            raise TileError(f"bundle: {end - pos} trailing bytes after {count} entries")
        if i == TILE_WIDTH:
            raise TileError(f"bundle: more than {TILE_WIDTH} entries")
        if end - pos < 2:
            raise TileError(f"bundle entry {i}: truncated length prefix")
        length = int.from_bytes(view[pos : pos + 2], "big")
        pos += 2
        if end - pos < length:
            raise TileError(f"bundle entry {i}: {end - pos} bytes left, expected {length}")
        entries.append(bytes(view[pos : pos + length]))
        pos += length
    if not entries:
        raise TileError(f"bundle: empty, expected 1..{TILE_WIDTH} entries")
    if count is not None and len(entries) != count:
        raise TileError(f"bundle: {len(entries)} entries, expected {count}")
    return entries
