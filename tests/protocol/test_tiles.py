"""protocol.tiles: C2SP tlog-tiles paths, tile sets, hash tiles, entry bundles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import TileError
from protocol.merkle import EMPTY_ROOT, LeafHashes, leaf_hash, root_of, tree_root
from protocol.tiles import (
    HASH_SIZE,
    MAX_BUNDLE_ENTRY,
    MAX_LEVEL,
    TILE_HEIGHT,
    TILE_WIDTH,
    Tile,
    bundle_tiles,
    decode_bundle,
    edge_tiles,
    encode_bundle,
    format_tile_index,
    full_tile_hash,
    parse_tile_index,
    parse_tile_path,
    read_tile,
    root_from_edge_tiles,
    tile_for_size,
    tile_hashes,
    tile_path,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "tiles"
INDEX_VECTORS = sorted(VECTORS.glob("index-*.json"))
PATH_VECTORS = sorted(VECTORS.glob("path-*.json"))
SIZE_VECTORS = sorted(VECTORS.glob("size-*.json"))
INVALID_PATHS = json.loads((VECTORS / "invalid-paths.json").read_text())["cases"]

# Enough leaves for two full level-1 tiles plus change, so level-2 partial tiles and
# sizes that are multiples of 65536 (no partial tile at levels 0 and 1) occur.
MAX_LEAVES = 2 * 65536 + 1024
LEAVES = [leaf_hash(i.to_bytes(8, "big")) for i in range(MAX_LEAVES)]
READER = LeafHashes(LEAVES)
MAX_INDEX = 2**64 - 1


# --- known answers ----------------------------------------------------------------------


@pytest.mark.parametrize("path", INDEX_VECTORS, ids=[p.stem for p in INDEX_VECTORS])
def test_index_vector(path):
    v = json.loads(path.read_text())
    assert format_tile_index(v["index"]) == v["encoded"]
    assert parse_tile_index(v["encoded"]) == v["index"]


@pytest.mark.parametrize("path", PATH_VECTORS, ids=[p.stem for p in PATH_VECTORS])
def test_path_vector(path):
    v = json.loads(path.read_text())
    tile = Tile(**v["tile"])
    assert tile_path(tile) == v["path"]
    assert parse_tile_path(v["path"]) == tile


@pytest.mark.parametrize("case", INVALID_PATHS, ids=[c["path"] for c in INVALID_PATHS])
def test_invalid_path_vector(case):
    with pytest.raises(TileError):
        parse_tile_path(case["path"])


@pytest.mark.parametrize("path", SIZE_VECTORS, ids=[p.stem for p in SIZE_VECTORS])
def test_size_vector(path):
    v = json.loads(path.read_text())
    size = v["size"]
    full: dict[str, int] = {}
    partial = []
    for level in range(4):
        index = 0
        while (tile := tile_for_size(level, index, size)) is not None:
            if tile.is_full:
                full[str(level)] = full.get(str(level), 0) + 1
            else:
                partial.append({"level": level, "index": index, "width": tile.width})
            index += 1
    assert full == v["full_tiles"]
    assert partial == v["partial_tiles"]
    assert [{"level": t.level, "index": t.index, "width": t.width} for t in edge_tiles(size)] == v["partial_tiles"]
    # The entry bundles mirror level 0.
    bundles = bundle_tiles(size)
    assert sum(b.is_full for b in bundles) == v["full_tiles"].get("0", 0)
    assert all(b.entries for b in bundles)


# --- paths ------------------------------------------------------------------------------


def test_index_groups():
    assert format_tile_index(0) == "000"
    assert format_tile_index(999) == "999"
    assert format_tile_index(1000) == "x001/000"
    assert format_tile_index(MAX_INDEX) == "x018/x446/x744/x073/x709/x551/615"
    for bad in ("x001/000/", "x1/000", "001/000", "x001", "0x01", "١٢٣", "x000/001", ""):
        with pytest.raises(TileError):
            parse_tile_index(bad)
    with pytest.raises(TileError, match="expected at most"):
        parse_tile_index("x018/x446/x744/x073/x709/x551/616")
    with pytest.raises(TileError):
        format_tile_index(-1)


tiles_strategy = st.one_of(
    st.builds(
        Tile,
        level=st.integers(0, MAX_LEVEL),
        index=st.one_of(st.integers(0, 2000), st.integers(0, MAX_INDEX)),
        width=st.integers(1, TILE_WIDTH),
    ),
    st.builds(
        Tile,
        level=st.just(0),
        index=st.one_of(st.integers(0, 2000), st.integers(0, MAX_INDEX)),
        width=st.integers(1, TILE_WIDTH),
        entries=st.just(True),
    ),
)


@settings(max_examples=300, deadline=None)
@given(tile=tiles_strategy)
def test_tile_path_round_trips(tile):
    path = tile_path(tile)
    assert parse_tile_path(path) == tile
    assert path.endswith(f".p/{tile.width}") == (not tile.is_full)
    assert parse_tile_index(format_tile_index(tile.index)) == tile.index


# Strings that look like tile paths, mostly well formed but with near misses mixed in
# (prefix, digit count, leading zeros, level and width range): whatever parses must be
# the one canonical spelling of its tile.
_odd_digits = st.from_regex(r"[0-9]{1,4}", fullmatch=True)  # wrong count or leading zeros, often
_three = st.integers(0, 999).map(lambda n: f"{n:03d}")
_group = st.one_of(_three, _three, _three, _odd_digits)
_number = st.one_of(st.integers(0, 300).map(str), st.integers(0, 300).map(str), _odd_digits)


near_paths = st.builds(
    lambda kind, groups, last, suffix: f"tile/{kind}/" + "".join(g + "/" for g in groups) + last + suffix,
    kind=st.one_of(st.just("entries"), _number, _number, st.sampled_from(["data", "-1", "+1", ""])),
    groups=st.lists(
        st.builds(lambda x, d: x + d, st.sampled_from(["x", "x", "x", "X", ""]), _group), max_size=8
    ),
    last=st.builds(lambda x, d: x + d, st.sampled_from(["", "", "", "x"]), _group),
    suffix=st.one_of(
        st.just(""), _number.map(lambda d: ".p/" + d), st.sampled_from([".p/", "/", ".p", "\n", ".P/1"])
    ),
)


@settings(max_examples=500, deadline=None)
@given(path=near_paths)
def test_only_canonical_paths_parse(path):
    try:
        tile = parse_tile_path(path)
    except TileError:
        return
    assert tile_path(tile) == path


@settings(max_examples=300, deadline=None)
@given(tile=tiles_strategy, data=st.data())
def test_non_canonical_spellings_are_rejected(tile, data):
    path = tile_path(tile)
    head, _, rest = path.partition("/")  # "tile", "<L or entries>/<N>[.p/<W>]"
    kind, _, tail = rest.partition("/")
    variants = [
        f"{head}/{kind}/x000/{tail}",  # leading zero group
        path.upper(),
        path + "/",
        "/" + path,
        path.replace("/", "//", 2),
    ]
    if not tile.entries:
        variants.append(f"{head}/0{kind}/{tail}")  # leading zero in level
    if tile.is_full:
        variants.append(path + f".p/{TILE_WIDTH}")
    else:
        w = str(tile.width)
        variants.append(path[: -len(w)] + "0" + w)  # leading zero in width
    for variant in variants:
        with pytest.raises(TileError):
            parse_tile_path(variant)


def test_level_and_width_limits():
    assert parse_tile_path("tile/63/000") == Tile(level=63, index=0, width=TILE_WIDTH)
    assert parse_tile_path("tile/0/000.p/255").width == 255
    for bad in ("tile/64/000", "tile/99/000", "tile/100/000", "tile/0/000.p/256", "tile/0/000.p/999"):
        with pytest.raises(TileError):
            parse_tile_path(bad)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(level=64, index=0, width=1),
        dict(level=-1, index=0, width=1),
        dict(level=0, index=-1, width=1),
        dict(level=0, index=MAX_INDEX + 1, width=1),
        dict(level=0, index=0, width=0),
        dict(level=0, index=0, width=257),
        dict(level=True, index=0, width=1),
        dict(level=0, index=0, width=1.0),
        dict(level=1, index=0, width=1, entries=True),
        dict(level=0, index=0, width=1, entries=1),
    ],
    ids=lambda kw: ",".join(f"{k}={v!r}" for k, v in kw.items()),
)
def test_tile_rejects_invalid_coordinates(kwargs):
    with pytest.raises(TileError):
        Tile(**kwargs)


@settings(max_examples=500, deadline=None)
@given(path=st.one_of(st.text(max_size=200), st.binary(max_size=20), st.none(), st.integers()))
def test_parse_tile_path_hostile_input_raises_only_tile_error(path):
    try:
        tile = parse_tile_path(path)
    except TileError:
        return
    assert tile_path(tile) == path


# --- which tiles a tree has ---------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(level=st.integers(0, 3), index=st.integers(0, 1100), size=st.integers(0, 2**40))
def test_tile_for_size_follows_the_spec_formula(level, index, size):
    tile = tile_for_size(level, index, size)
    count = size // 256**level  # hashes at tree level 8*level
    if count <= index * 256:
        assert tile is None
    else:
        assert tile == Tile(level=level, index=index, width=min(256, count - index * 256))


def test_tile_for_size_entries():
    assert tile_for_size(0, 1, 300, entries=True) == Tile(level=0, index=1, width=44, entries=True)
    assert tile_for_size(0, 2, 300, entries=True) is None
    with pytest.raises(TileError):
        tile_for_size(1, 0, 300, entries=True)


def test_edge_tiles_skip_levels_with_no_partial_tile():
    assert edge_tiles(0) == []
    assert edge_tiles(256) == [Tile(level=1, index=0, width=1)]
    assert edge_tiles(65536) == [Tile(level=2, index=0, width=1)]
    assert edge_tiles(65536 + 5) == [Tile(level=0, index=256, width=5), Tile(level=2, index=0, width=1)]
    assert edge_tiles(2**64 - 1)[-1] == Tile(level=7, index=0, width=255)


def test_bundle_tiles_from_an_old_size():
    assert bundle_tiles(0) == []
    assert bundle_tiles(300) == [
        Tile(level=0, index=0, width=256, entries=True),
        Tile(level=0, index=1, width=44, entries=True),
    ]
    assert bundle_tiles(300, old_size=256) == [Tile(level=0, index=1, width=44, entries=True)]
    assert bundle_tiles(300, old_size=255) == bundle_tiles(300)
    assert bundle_tiles(300, old_size=300) == []
    assert bundle_tiles(512, old_size=300) == [Tile(level=0, index=1, width=256, entries=True)]
    with pytest.raises(TileError, match="old size: 301, expected 0..300"):
        bundle_tiles(300, old_size=301)


# --- hash tiles -------------------------------------------------------------------------


def _edge(size: int) -> dict[Tile, bytes]:
    return {t: read_tile(t, READER) for t in edge_tiles(size)}


ROOT_SIZES = sorted(
    {
        *range(0, 600),
        *(256 * k + d for k in range(1, 12) for d in (-1, 0, 1)),
        4096,
        70000,
        65535,
        65536,
        65537,
        65536 + 256,
        65536 + 255,
        2 * 65536 - 1,
        2 * 65536,
        2 * 65536 + 1,
        2 * 65536 + 256 * 3 + 5,
        MAX_LEAVES,
    }
)


def test_root_from_edge_tiles_matches_reference_root():
    for size in ROOT_SIZES:
        assert root_from_edge_tiles(size, _edge(size)) == root_of(LEAVES[:size]), size


@settings(max_examples=100, deadline=None)
@given(size=st.integers(0, MAX_LEAVES))
def test_root_from_edge_tiles_any_size(size):
    assert root_from_edge_tiles(size, _edge(size)) == tree_root(size, READER)


def test_root_from_edge_tiles_needs_every_edge_tile_and_ignores_others():
    size = 70000
    tiles = _edge(size)
    extra = {**tiles, Tile(level=0, index=0, width=TILE_WIDTH): read_tile(Tile(level=0, index=0, width=256), READER)}
    assert root_from_edge_tiles(size, extra) == root_of(LEAVES[:size])
    for missing in tiles:
        with pytest.raises(TileError, match=f"edge tile {tile_path(missing)}: missing"):
            root_from_edge_tiles(size, {t: d for t, d in tiles.items() if t != missing})
    short = {**tiles, edge_tiles(size)[0]: b"\x00" * 31}
    with pytest.raises(TileError, match="31 bytes, expected 3584"):
        root_from_edge_tiles(size, short)
    assert root_from_edge_tiles(0, {}) == EMPTY_ROOT


def test_corrupt_edge_tile_changes_the_root():
    size = 70000
    tiles = _edge(size)
    good = root_of(LEAVES[:size])
    for tile, data in tiles.items():
        bad = bytearray(data)
        bad[-1] ^= 1
        assert root_from_edge_tiles(size, {**tiles, tile: bytes(bad)}) != good


def test_full_tile_hash_is_the_parent_slot():
    # Level 0 tiles reduce to level-8 nodes, held by the level-1 tile; level 1 to level 16.
    for level, index in [(0, 0), (0, 5), (0, 255), (0, 300), (0, 511), (1, 0), (1, 1)]:
        data = read_tile(Tile(level=level, index=index, width=TILE_WIDTH), READER)
        assert len(data) == TILE_WIDTH * HASH_SIZE
        parent = Tile(level=level + 1, index=index // TILE_WIDTH, width=index % TILE_WIDTH + 1)
        slots = tile_hashes(read_tile(parent, READER), parent.width)
        assert full_tile_hash(data) == slots[index % TILE_WIDTH]
        assert full_tile_hash(data) == READER.node(TILE_HEIGHT * (level + 1), index)
    with pytest.raises(TileError, match="expected 8192"):
        full_tile_hash(b"\x00" * 32 * 255)


def test_read_tile_matches_leaf_hashes_and_refuses_bundles():
    tile = Tile(level=0, index=3, width=17)
    assert tile_hashes(read_tile(tile, READER), 17) == LEAVES[3 * 256 : 3 * 256 + 17]
    with pytest.raises(TileError, match="an entry bundle, not a hash tile"):
        read_tile(Tile(level=0, index=0, width=1, entries=True), READER)


def test_bundle_entries_hash_to_the_level_0_tile():
    # How a syncing node checks a fetched bundle against a verified level-0 tile.
    entries = [f"entry {i}".encode() for i in range(300)]
    reader = LeafHashes(leaf_hash(e) for e in entries)
    for bundle in bundle_tiles(len(entries)):
        data = encode_bundle(entries[bundle.index * 256 : bundle.index * 256 + bundle.width])
        decoded = decode_bundle(data, count=bundle.width)
        tile = Tile(level=0, index=bundle.index, width=bundle.width)
        assert [leaf_hash(e) for e in decoded] == tile_hashes(read_tile(tile, reader), tile.width)


@settings(max_examples=300, deadline=None)
@given(data=st.one_of(st.binary(max_size=300), st.none(), st.text(max_size=5)), width=st.integers(-2, 300))
def test_tile_hashes_hostile_input_raises_only_tile_error(data, width):
    try:
        hashes = tile_hashes(data, width)
    except TileError:
        return
    assert b"".join(hashes) == data and len(hashes) == width


# --- entry bundles ----------------------------------------------------------------------


def test_bundle_framing_example():
    assert encode_bundle([b"ab", b""]) == b"\x00\x02ab\x00\x00"
    assert decode_bundle(b"\x00\x02ab\x00\x00") == [b"ab", b""]
    assert decode_bundle(encode_bundle([b"x" * MAX_BUNDLE_ENTRY]), count=1) == [b"x" * MAX_BUNDLE_ENTRY]


bundles = st.lists(st.binary(max_size=300), min_size=1, max_size=TILE_WIDTH)


@settings(max_examples=150, deadline=None)
@given(entries=bundles)
def test_bundle_round_trips(entries):
    data = encode_bundle(entries)
    assert decode_bundle(data) == entries
    assert decode_bundle(data, count=len(entries)) == entries


@settings(max_examples=100, deadline=None)
@given(entries=st.lists(st.binary(max_size=40), min_size=1, max_size=20))
def test_bundle_truncation_and_trailing_bytes_fail(entries):
    data = encode_bundle(entries)
    for cut in range(len(data)):
        with pytest.raises(TileError):
            decode_bundle(data[:cut], count=len(entries))
    with pytest.raises(TileError, match="trailing bytes"):
        decode_bundle(data + b"\x00\x00", count=len(entries))
    with pytest.raises(TileError, match="truncated length prefix"):
        decode_bundle(data + b"\x00")
    if len(entries) < TILE_WIDTH:
        with pytest.raises(TileError, match=f"{len(entries)} entries, expected {len(entries) + 1}"):
            decode_bundle(data, count=len(entries) + 1)


def test_bundle_limits():
    with pytest.raises(TileError, match="0 entries, expected 1..256"):
        encode_bundle([])
    with pytest.raises(TileError, match="257 entries"):
        encode_bundle([b""] * 257)
    with pytest.raises(TileError, match="65536 bytes, expected at most 65535"):
        encode_bundle([b"x" * 65536])
    with pytest.raises(TileError, match="expected bytes"):
        encode_bundle(["text"])
    with pytest.raises(TileError, match="expected a sequence"):
        encode_bundle(b"ab")
    with pytest.raises(TileError, match="empty"):
        decode_bundle(b"")
    with pytest.raises(TileError, match="more than 256 entries"):
        decode_bundle(b"\x00\x00" * 257)
    with pytest.raises(TileError, match="bundle count"):
        decode_bundle(b"\x00\x00", count=0)
    with pytest.raises(TileError, match="1 bytes left, expected 2"):
        decode_bundle(b"\x00\x02a")


@settings(max_examples=500, deadline=None)
@given(data=st.one_of(st.binary(max_size=600), st.none(), st.text(max_size=5)), count=st.one_of(st.none(), st.integers(-1, 300)))
def test_decode_bundle_hostile_input_raises_only_tile_error(data, count):
    try:
        entries = decode_bundle(data, count=count)
    except TileError:
        return
    assert encode_bundle(entries) == data
