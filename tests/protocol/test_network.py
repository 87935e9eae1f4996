"""The network file: content, hash, founders' signatures and TOML (protocol/network.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import itertools
import json
from pathlib import Path

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.errors import NetworkFileError, ProtocolError, SignatureError
from protocol.keys import Signer, signer_from_seed
from protocol.network import (
    MAX_CITY_NAME,
    MAX_FILE_SIZE,
    MAX_FOUNDERS,
    AdmissionRule,
    Founder,
    NetworkFile,
    canonical_content,
    format_network_file,
    network_hash,
    parse_network_file,
    sign_network_file,
    signing_text,
    verify_network_signatures,
)
from protocol.note import NoteSignature, verify_note

VECTORS = Path(__file__).parent.parent / "vectors" / "network"
VECTOR_FILES = sorted(VECTORS.glob("*.json"))


def _signer(origin: str, label: str | None = None) -> Signer:
    return signer_from_seed(origin, hashlib.sha256(f"test_network {label or origin}".encode()).digest())


ATHENS = _signer("athens.example/solidarity")
LYON = _signer("lyon.example/log")
PALERMO = _signer("solidarity.palermo.example/log")
OUTSIDER = _signer("outsider.example/log")
# Same origin as Athens, another key.
ATHENS_TWIN = _signer("athens.example/solidarity", "twin")
POOL = [_signer(f"city{i}.example/log") for i in range(6)]
RULE = AdmissionRule(min_vouches=2, share_percent=50)


def founder(signer: Signer, name: str | None = None, url: str | None = None) -> Founder:
    city = name or signer.name.split(".")[0].capitalize()
    return Founder(name=city, key=signer.verifier, url=url or f"https://{signer.name}")


def network(*signers: Signer, rule: AdmissionRule = RULE, name: str = "solidarity-cities") -> NetworkFile:
    return NetworkFile(name=name, rule=rule, founders=tuple(founder(s) for s in signers))


def signed(nf: NetworkFile, *signers: Signer) -> NetworkFile:
    for s in signers:
        nf = sign_network_file(nf, s)
    return nf


# --- known-answer vectors ---------------------------------------------------------


def load_make_vectors():
    spec = importlib.util.spec_from_file_location("make_network_vectors", VECTORS / "make_vectors.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", VECTOR_FILES, ids=[p.stem for p in VECTOR_FILES])
def test_vector(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    nf = parse_network_file(case["file"])
    assert canonical_content(nf).hex() == case["canonical_content_hex"]
    assert network_hash(nf).hex() == case["network_hash_hex"]
    assert signing_text(nf) == case["signing_text"]
    assert format_network_file(nf) == case["file"]
    assert f"# network hash: {case['network_hash_hex']}\n" in case["file"]
    assert [str(f.key) for f in verify_network_signatures(nf)] == case["signed_by"]
    assert [(f.name, f.key.name, f.url, str(f.key)) for f in nf.founders] == [
        (f["name"], f["origin"], f["url"], f["key"]) for f in case["founders"]
    ]


@pytest.mark.parametrize("path", VECTOR_FILES, ids=[p.stem for p in VECTOR_FILES])
def test_vector_hash_without_our_encoder(path: Path) -> None:
    # The canonical content spelled out by hand (keys in byte order) and
    # packed by msgpack itself, so the vector does not only check encode() against itself.
    case = json.loads(path.read_text(encoding="utf-8"))
    nf = parse_network_file(case["file"])
    founders = sorted(case["founders"], key=lambda f: f["key"])
    content = msgpack.packb(
        {
            "admission": {"min_vouches": nf.rule.min_vouches, "share_percent": nf.rule.share_percent},
            "founders": [{"key": f["key"], "name": f["name"], "url": f["url"]} for f in founders],
            "name": nf.name,
        },
        use_bin_type=True,
    )
    assert content.hex() == case["canonical_content_hex"]
    assert hashlib.sha256(content).hexdigest() == case["network_hash_hex"]


@pytest.mark.parametrize("path", VECTOR_FILES, ids=[p.stem for p in VECTOR_FILES])
def test_vector_signatures_are_c2sp_signed_notes(path: Path) -> None:
    case = json.loads(path.read_text(encoding="utf-8"))
    nf = parse_network_file(case["file"])
    for sig, f in zip(nf.signatures, nf.founders, strict=True):
        note = (case["signing_text"] + "\n" + sig.line() + "\n").encode("utf-8")
        _, keys = verify_note(note, [f.key])
        assert keys == (f.key,)


def test_vectors_are_reproducible() -> None:
    module = load_make_vectors()
    built = module.build()
    assert sorted(built) == [p.stem for p in VECTOR_FILES]
    for name, vector in built.items():
        assert module.dump(vector) == (VECTORS / f"{name}.json").read_text(encoding="utf-8")


# --- values -----------------------------------------------------------------------


def test_shape_of_the_file() -> None:
    nf = signed(network(ATHENS, LYON), ATHENS)
    text = format_network_file(nf)
    start = text.index("\n[network]\n") + 1
    body = text[start:]
    assert body == (
        "[network]\n"
        'name = "solidarity-cities"\n'
        "min_vouches = 2\n"
        "share_percent = 50\n"
        "\n"
        "[[founders]]\n"
        'name = "Athens"\n'
        f'key = "{ATHENS.verifier}"\n'
        'url = "https://athens.example/solidarity"\n'
        "\n"
        "[[founders]]\n"
        'name = "Lyon"\n'
        f'key = "{LYON.verifier}"\n'
        'url = "https://lyon.example/log"\n'
        "\n"
        "[signatures]\n"
        "lines = [\n"
        f'    "{nf.signatures[0].line()}",\n'
        "]\n"
    )
    assert all(line.startswith("#") for line in text[:start].splitlines() if line)
    assert parse_network_file(text) == nf


def test_unsigned_file_round_trips_and_signatures_table_is_optional() -> None:
    nf = network(ATHENS)
    text = format_network_file(nf)
    assert "lines = []\n" in text
    assert parse_network_file(text) == nf
    assert parse_network_file(text.replace("[signatures]\nlines = []\n", "")) == nf


def test_canonical_content_layout() -> None:
    nf = network(LYON, ATHENS)
    # Founders sorted by key string, whatever order the file lists them in.
    first, second = sorted([ATHENS, LYON], key=lambda s: str(s.verifier))
    assert msgpack.unpackb(canonical_content(nf)) == {
        "admission": {"min_vouches": 2, "share_percent": 50},
        "founders": [
            {"key": str(first.verifier), "name": founder(first).name, "url": founder(first).url},
            {"key": str(second.verifier), "name": founder(second).name, "url": founder(second).url},
        ],
        "name": "solidarity-cities",
    }
    assert network_hash(nf) == hashlib.sha256(canonical_content(nf)).digest()
    assert signing_text(nf) == f"solidarity-network-file/v1\nsolidarity-cities\n{network_hash(nf).hex()}\n"


def test_hash_independent_of_founder_order_and_signatures() -> None:
    signers = [ATHENS, LYON, PALERMO]
    hashes = {network_hash(network(*order)) for order in itertools.permutations(signers)}
    assert len(hashes) == 1
    assert network_hash(signed(network(*signers), LYON)) in hashes


def test_signatures_survive_reordering_founders_and_comments() -> None:
    nf = signed(network(ATHENS, LYON), ATHENS, LYON)
    reordered = dataclasses.replace(nf, founders=tuple(reversed(nf.founders)))
    text = "# a different comment\n" + format_network_file(reordered).replace("\n[[founders]]", "\n# hi\n[[founders]]")
    again = parse_network_file(text)
    assert again != nf
    assert {str(f.key) for f in verify_network_signatures(again)} == {str(ATHENS.verifier), str(LYON.verifier)}


@pytest.mark.parametrize(
    "change",
    [
        lambda nf: dataclasses.replace(nf, name="other-network"),
        lambda nf: dataclasses.replace(nf, rule=AdmissionRule(min_vouches=3, share_percent=50)),
        lambda nf: dataclasses.replace(nf, rule=AdmissionRule(min_vouches=2, share_percent=51)),
        lambda nf: dataclasses.replace(nf, founders=nf.founders + (founder(PALERMO),)),
        lambda nf: dataclasses.replace(nf, founders=nf.founders[:1]),
        lambda nf: dataclasses.replace(
            nf, founders=(dataclasses.replace(nf.founders[0], url="https://evil.example/"),) + nf.founders[1:]
        ),
        lambda nf: dataclasses.replace(
            nf, founders=(dataclasses.replace(nf.founders[0], name="Athina"),) + nf.founders[1:]
        ),
        lambda nf: dataclasses.replace(nf, founders=(founder(ATHENS_TWIN),) + nf.founders[1:]),
    ],
    ids=["name", "min-vouches", "share", "added-founder", "removed-founder", "url", "city-name", "key"],
)
def test_tampering_invalidates_every_signature(change) -> None:
    nf = signed(network(ATHENS, LYON), ATHENS, LYON)
    assert len(verify_network_signatures(nf)) == 2
    tampered = change(nf)
    assert network_hash(tampered) != network_hash(nf)
    # Each founder's old signature alone is refused, so none of them counts.
    for sig in tampered.signatures:
        if any((f.key.name, f.key.key_id) == (sig.name, sig.key_id) for f in tampered.founders):
            with pytest.raises(SignatureError, match="does not verify"):
                verify_network_signatures(dataclasses.replace(tampered, signatures=(sig,)))
    # Through the file text too.
    with pytest.raises(SignatureError):
        verify_network_signatures(parse_network_file(format_network_file(tampered)))
    # Once a founder signs the new file and the stale signatures are dropped,
    # only that founder has signed: fewer than before.
    survivor = tampered.founders[0]
    signer = next(s for s in (ATHENS, LYON, PALERMO, ATHENS_TWIN) if s.verifier == survivor.key)
    fresh = sign_network_file(dataclasses.replace(tampered, signatures=()), signer)
    assert verify_network_signatures(fresh) == (survivor,)


def test_sign_and_verify() -> None:
    nf = network(ATHENS, LYON, PALERMO)
    assert verify_network_signatures(nf) == ()
    one = sign_network_file(nf, LYON)
    assert verify_network_signatures(one) == (nf.founders[1],)
    # Founder order, whatever order they signed in.
    three = signed(nf, PALERMO, ATHENS, LYON)
    assert verify_network_signatures(three) == nf.founders
    assert [s.name for s in three.signatures] == [PALERMO.name, ATHENS.name, LYON.name]
    # Ed25519 signs deterministically: the same content, the same signature.
    assert signed(nf, ATHENS).signatures == signed(nf, ATHENS, ATHENS).signatures


def test_resigning_replaces_the_earlier_signature() -> None:
    nf = signed(network(ATHENS, LYON), ATHENS)
    stale = dataclasses.replace(nf, rule=AdmissionRule(min_vouches=1, share_percent=0))
    again = sign_network_file(stale, ATHENS)
    assert len(again.signatures) == 1
    assert verify_network_signatures(again) == (again.founders[0],)
    both = sign_network_file(sign_network_file(stale, LYON), ATHENS)
    assert [s.name for s in both.signatures] == [LYON.name, ATHENS.name]
    assert len(verify_network_signatures(both)) == 2


@pytest.mark.parametrize("signer", [OUTSIDER, ATHENS_TWIN], ids=["other-key", "same-origin-other-key"])
def test_only_founders_sign(signer: Signer) -> None:
    with pytest.raises(NetworkFileError, match="is not the key of a founder"):
        sign_network_file(network(ATHENS, LYON), signer)


def test_signatures_by_unknown_keys_are_ignored() -> None:
    nf = signed(network(ATHENS, LYON), ATHENS)
    text = signing_text(nf).encode()
    extra = (
        # A valid signature by a key that is not a founder's.
        NoteSignature(name=OUTSIDER.name, key_id=OUTSIDER.key_id, signature=OUTSIDER.sign(text)),
        # Garbage by an unknown key.
        NoteSignature(name="who.example/log", key_id=b"\x00\x01\x02\x03", signature=b"x" * 64),
        # A founder's name with another key id (C2SP: unknown; ignored).
        NoteSignature(name=LYON.name, key_id=bytes(4), signature=b"y" * 64),
        # Another signature type (a cosignature, say): any length, ignored.
        NoteSignature(name="witness.example\x7fw", key_id=b"wxyz", signature=b"\x04" * 72),
    )
    more = dataclasses.replace(nf, signatures=nf.signatures + extra)
    assert verify_network_signatures(more) == (nf.founders[0],)
    assert parse_network_file(format_network_file(more)) == more
    only_unknown = dataclasses.replace(nf, signatures=extra)
    assert verify_network_signatures(only_unknown) == ()


@pytest.mark.parametrize("corrupt", ["flip", "truncate", "other-message"])
def test_bad_signature_by_a_founder_raises(corrupt: str) -> None:
    nf = signed(network(ATHENS, LYON), ATHENS, LYON)
    sig = nf.signatures[1]
    if corrupt == "flip":
        bad = sig.signature[:10] + bytes([sig.signature[10] ^ 1]) + sig.signature[11:]
    elif corrupt == "truncate":
        bad = sig.signature[:63]
    else:
        bad = LYON.sign(b"solidarity-network-file/v1\nsolidarity-cities\n" + bytes(64) + b"\n")
    tampered = dataclasses.replace(nf, signatures=(nf.signatures[0], dataclasses.replace(sig, signature=bad)))
    with pytest.raises(SignatureError, match=r"founder lyon\.example/log\+[0-9a-f]{8} does not verify"):
        verify_network_signatures(tampered)
    with pytest.raises(SignatureError):
        verify_network_signatures(parse_network_file(format_network_file(tampered)))


# --- round trips ------------------------------------------------------------------

network_names = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,63}", fullmatch=True)
rules = st.builds(
    AdmissionRule, min_vouches=st.integers(1, 1000), share_percent=st.integers(0, 99)
)
city_names = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="".join(map(chr, [*range(32), *range(127, 160)]))),
    min_size=1,
    max_size=MAX_CITY_NAME,
).filter(lambda s: s == s.strip())
urls = st.one_of(
    st.sampled_from(
        [
            "http://localhost:8701",
            "https://athens.example/solidarity",
            "https://[2001:db8::1]:8443/x?y=1#z",
            "https://solidarity.palermo.example/",
        ]
    ),
    st.from_regex(r"https?://[a-z0-9.-]{1,30}(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]{0,40})?", fullmatch=True),
)


@st.composite
def network_files(draw) -> NetworkFile:
    chosen = draw(st.lists(st.sampled_from(POOL), min_size=1, max_size=len(POOL), unique_by=lambda s: s.name))
    founders = tuple(Founder(name=draw(city_names), key=s.verifier, url=draw(urls)) for s in chosen)
    nf = NetworkFile(name=draw(network_names), rule=draw(rules), founders=founders)
    for s in draw(st.lists(st.sampled_from(chosen), unique_by=lambda s: s.name)):
        nf = sign_network_file(nf, s)
    return nf


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(network_files())
def test_round_trip(nf: NetworkFile) -> None:
    text = format_network_file(nf)
    again = parse_network_file(text)
    assert again == nf
    assert format_network_file(again) == text
    assert network_hash(again) == network_hash(nf)
    assert len(verify_network_signatures(again)) == len(nf.signatures)


@settings(max_examples=60, deadline=None)
@given(rules, st.integers(0, 10**6))
def test_needed_formula(rule: AdmissionRule, members: int) -> None:
    need = rule.needed(members)
    assert need == max(rule.min_vouches, members * rule.share_percent // 100 + 1)
    # More than share_percent of the members, and never fewer than min_vouches.
    assert need >= rule.min_vouches
    assert need * 100 > members * rule.share_percent


def test_largest_file_parses() -> None:
    signers = [signer_from_seed(f"c{i}.example/log", i.to_bytes(32, "big")) for i in range(MAX_FOUNDERS)]
    nf = NetworkFile(
        name="big",
        rule=RULE,
        founders=tuple(Founder(name=f"City {i}", key=s.verifier, url=f"https://c{i}.example/") for i, s in enumerate(signers)),
    )
    nf = signed(nf, *signers[:50])
    text = format_network_file(nf)
    assert len(text.encode()) < MAX_FILE_SIZE
    again = parse_network_file(text)
    assert again == nf
    assert len(verify_network_signatures(again)) == 50
    with pytest.raises(NetworkFileError, match="founders: expected 1 to 1000, got 1001"):
        dataclasses.replace(nf, founders=nf.founders + (founder(ATHENS),))
    # A file format could write only above the size limit is refused when written.
    wide = dataclasses.replace(
        nf,
        founders=tuple(
            dataclasses.replace(f, name="\U0001f30d" * MAX_CITY_NAME, url=f.url + "a" * 400) for f in nf.founders
        ),
    )
    with pytest.raises(NetworkFileError, match=f"at most {MAX_FILE_SIZE} allowed"):
        format_network_file(wide)


# --- values refused ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"name": ""}, "founder name: expected 1 to 200 characters, got 0"),
        ({"name": "x" * 201}, "expected 1 to 200 characters, got 201"),
        ({"name": "A\nB"}, "control character U\\+000A"),
        ({"name": "A\x85B"}, "control character U\\+0085"),
        ({"name": " Athens"}, "must not start or end with spaces"),
        ({"name": "\ud800"}, "not valid unicode"),
        ({"name": 5}, "founder name: expected a string, got integer 5"),
        ({"key": str(ATHENS.verifier)}, "founder key: expected a VerifierKey, got str"),
        ({"key": signer_from_seed("a", bytes(32)).verifier}, None),
        ({"key": signer_from_seed("caf\u00e9.example", bytes(32)).verifier}, "origin"),
        ({"url": "ftp://athens.example/"}, "founder url: expected an http or https URL"),
        ({"url": "https://"}, "expected an http or https URL"),
        ({"url": "https://a b/"}, "expected an http or https URL"),
        ({"url": "https://athens.example/\u00e9"}, "expected an http or https URL"),
        ({"url": "https://athens.example/" + "a" * 500}, "at most 500 characters"),
        ({"url": "https://athens.example/\n"}, "expected an http or https URL"),
    ],
)
def test_founder_refuses(kwargs: dict, match: str | None) -> None:
    values = {"name": "Athens", "key": ATHENS.verifier, "url": "https://athens.example/"} | kwargs
    if match is None:
        Founder(**values)
        return
    with pytest.raises(NetworkFileError, match=match):
        Founder(**values)


@pytest.mark.parametrize(
    ("min_vouches", "share_percent", "match"),
    [
        (0, 50, "min_vouches: expected an integer from 1 to 1000, got integer 0"),
        (1001, 50, "min_vouches"),
        (True, 50, "got boolean True"),
        (2.0, 50, "got float 2.0"),
        (2, 100, "share_percent: expected an integer from 0 to 99, got integer 100"),
        (2, -1, "share_percent"),
        (2, "50", "got string '50'"),
    ],
)
def test_rule_refuses(min_vouches: object, share_percent: object, match: str) -> None:
    with pytest.raises(NetworkFileError, match=match):
        AdmissionRule(min_vouches=min_vouches, share_percent=share_percent)  # type: ignore[arg-type]


def test_needed_refuses_bad_counts() -> None:
    with pytest.raises(NetworkFileError, match="member count"):
        RULE.needed(-1)
    with pytest.raises(NetworkFileError, match="member count"):
        RULE.needed(True)


def test_network_file_refuses() -> None:
    a, b = founder(ATHENS), founder(LYON)
    ok = {"name": "n", "rule": RULE, "founders": (a, b)}
    cases = [
        ({"name": "Solidarity"}, "network.name: expected 1 to 64"),
        ({"name": "-x"}, "network.name"),
        ({"name": "x" * 65}, "network.name"),
        ({"name": "x\n"}, "network.name"),
        ({"rule": (2, 50)}, "expected an AdmissionRule"),
        ({"founders": [a]}, "founders: expected a tuple, got list"),
        ({"founders": ()}, "founders: expected 1 to 1000, got 0"),
        ({"founders": (a, "b")}, r"founders\[1\]: expected a Founder, got str"),
        ({"founders": (a, b, dataclasses.replace(a, name="Athina"))}, r"founders\[2\]\.key: the same key as founders\[0\]"),
        ({"founders": (a, founder(ATHENS_TWIN))}, r"founders\[1\]\.key: origin .* already the origin of founders\[0\]"),
        ({"signatures": [1]}, "signatures: expected a tuple"),
        ({"signatures": ("x",)}, r"signatures\.lines\[0\]: expected a NoteSignature"),
    ]
    for change, match in cases:
        with pytest.raises(NetworkFileError, match=match):
            NetworkFile(**(ok | change))
    sig = NoteSignature(name="x", key_id=b"abcd", signature=b"s")
    with pytest.raises(NetworkFileError, match=r"lines\[2\]: a second signature by key x\+61626364"):
        NetworkFile(**ok, signatures=(sig, dataclasses.replace(sig, name="y"), dataclasses.replace(sig, signature=b"t")))
    with pytest.raises(NetworkFileError, match="at most 1000"):
        NetworkFile(
            **ok,
            signatures=tuple(NoteSignature(name=f"k{i}", key_id=b"abcd", signature=b"s") for i in range(1001)),
        )


def test_functions_refuse_other_types() -> None:
    with pytest.raises(NetworkFileError, match="expected a NetworkFile"):
        format_network_file("x")  # type: ignore[arg-type]
    with pytest.raises(NetworkFileError, match="expected a NetworkFile"):
        verify_network_signatures(None)  # type: ignore[arg-type]
    with pytest.raises(NetworkFileError, match="expected a Signer"):
        sign_network_file(network(ATHENS), ATHENS.verifier)  # type: ignore[arg-type]


# --- hostile and malformed files --------------------------------------------------

GOOD = format_network_file(signed(network(ATHENS, LYON), ATHENS))
HEAD = '[network]\nname = "n"\nmin_vouches = 2\nshare_percent = 50\n'
FOUNDER = f'\n[[founders]]\nname = "Athens"\nkey = "{ATHENS.verifier}"\nurl = "https://athens.example/"\n'
LYON_FOUNDER = f'\n[[founders]]\nname = "Lyon"\nkey = "{LYON.verifier}"\nurl = "https://lyon.example/"\n'
ATHENS_LINE = signed(network(ATHENS), ATHENS).signatures[0].line()

MALFORMED = {
    "not-toml": ("[network", "network file: not valid toml"),
    "duplicate-toml-key": (HEAD + 'name = "m"\n' + FOUNDER, "not valid toml"),
    "bad-date": ("a = 1979-02-30", "not valid toml"),
    "huge-integer": ("a = " + "9" * 5000, "not valid toml"),
    "deep-arrays": ("a = " + "[" * 100_000, "nested too deeply"),
    "deep-tables": ("a = " + "{b=" * 100_000, "nested too deeply"),
    "empty": ("", "network file: missing key 'network'"),
    "no-founders": (HEAD, "network file: missing key 'founders'"),
    "unknown-table": (HEAD + FOUNDER + "[extra]\n", "network file: unknown key 'extra'"),
    "unknown-top-key": ("version = 1\n" + HEAD + FOUNDER, "network file: unknown key 'version'"),
    "network-not-table": ('network = "n"\n' + FOUNDER, "network: expected a table, got string 'n'"),
    "network-unknown-key": (HEAD + "quorum = 3\n" + FOUNDER, "network: unknown key 'quorum'"),
    "network-missing-key": (
        '[network]\nname = "n"\nmin_vouches = 2\n' + FOUNDER,
        "network: missing key 'share_percent'",
    ),
    "bad-network-name": (HEAD.replace('"n"', '"N N"') + FOUNDER, "network.name: expected 1 to 64"),
    "network-name-not-string": (HEAD.replace('"n"', "1") + FOUNDER, "network.name: expected a string, got integer 1"),
    "min-vouches-string": (HEAD.replace("min_vouches = 2", 'min_vouches = "2"') + FOUNDER, "network.min_vouches: .* got string '2'"),
    "min-vouches-bool": (HEAD.replace("min_vouches = 2", "min_vouches = true") + FOUNDER, "network.min_vouches: .* got boolean True"),
    "min-vouches-float": (HEAD.replace("min_vouches = 2", "min_vouches = 2.0") + FOUNDER, "got float 2.0"),
    "min-vouches-zero": (HEAD.replace("min_vouches = 2", "min_vouches = 0") + FOUNDER, "from 1 to 1000, got integer 0"),
    "min-vouches-date": (HEAD.replace("min_vouches = 2", "min_vouches = 2026-01-01") + FOUNDER, "got date"),
    "share-100": (HEAD.replace("share_percent = 50", "share_percent = 100") + FOUNDER, "network.share_percent: expected an integer from 0 to 99"),
    "share-huge": (HEAD.replace("share_percent = 50", "share_percent = 99999999999999999999") + FOUNDER, "network.share_percent"),
    "founders-empty": ("founders = []\n" + HEAD, "founders: expected 1 to 1000, got 0"),
    "founders-not-array": ('founders = "x"\n' + HEAD, "founders: expected an array, got string 'x'"),
    "founders-table": (HEAD + '[founders]\nname = "x"\n', "founders: expected an array, got table"),
    "founder-not-table": ("founders = [1]\n" + HEAD, r"founders\[0\]: expected a table, got integer 1"),
    "founder-unknown-key": (HEAD + FOUNDER + 'country = "GR"\n', r"founders\[0\]: unknown key 'country'"),
    "founder-missing-url": (HEAD + FOUNDER.replace('url = "https://athens.example/"\n', ""), r"founders\[0\]: missing key 'url'"),
    "founder-bad-key": (HEAD + FOUNDER + LYON_FOUNDER.replace(str(LYON.verifier)[-5:], "AAAAA"), r"founders\[1\]\.key: verifier key"),
    "founder-key-wrong-id": (
        HEAD + LYON_FOUNDER + FOUNDER.replace(f"+{ATHENS.key_id.hex()}+", "+00000000+"),
        r"founders\[1\]\.key: verifier key: key id 00000000 does not match",
    ),
    "founder-key-not-string": (HEAD + FOUNDER.replace(f'"{ATHENS.verifier}"', "[1]"), r"founders\[0\]\.key: expected a string, got array"),
    "founder-key-not-origin": (
        HEAD + FOUNDER.replace(f'"{ATHENS.verifier}"', json.dumps(str(signer_from_seed("café", bytes(32)).verifier))),
        r"founders\[0\]\.key: key name is the log's origin",
    ),
    "founder-bad-url": (HEAD + FOUNDER.replace("https://athens", "gopher://athens"), r"founders\[0\]\.url: expected an http or https URL"),
    "founder-empty-name": (HEAD + FOUNDER.replace('"Athens"', '""'), r"founders\[0\]\.name: expected 1 to 200 characters, got 0"),
    "founder-control-name": (HEAD + FOUNDER.replace('"Athens"', '"At\\u0000hens"'), r"founders\[0\]\.name: control character U\+0000"),
    "founder-long-name": (HEAD + FOUNDER.replace('"Athens"', '"' + "a" * 201 + '"'), r"founders\[0\]\.name: expected 1 to 200"),
    "duplicate-founder": (HEAD + FOUNDER + LYON_FOUNDER + FOUNDER, r"founders\[2\]\.key: the same key as founders\[0\]"),
    "duplicate-origin": (
        HEAD + FOUNDER + FOUNDER.replace(str(ATHENS.verifier), str(ATHENS_TWIN.verifier)),
        r"founders\[1\]\.key: origin 'athens.example/solidarity' is already the origin of founders\[0\]",
    ),
    "signatures-unknown-key": (HEAD + FOUNDER + "[signatures]\nlines = []\nextra = 1\n", "signatures: unknown key 'extra'"),
    "signatures-missing-lines": (HEAD + FOUNDER + "[signatures]\n", "signatures: missing key 'lines'"),
    "signatures-not-table": ("signatures = []\n" + HEAD + FOUNDER, "signatures: expected a table, got array"),
    "lines-not-array": (HEAD + FOUNDER + '[signatures]\nlines = "x"\n', "signatures.lines: expected an array"),
    "line-not-string": (HEAD + FOUNDER + "[signatures]\nlines = [1]\n", r"signatures\.lines\[0\]: expected a string, got integer 1"),
    "line-no-dash": (HEAD + FOUNDER + f'[signatures]\nlines = ["{ATHENS_LINE[2:]}"]\n', r"lines\[0\]: expected an em dash"),
    "line-no-space": (HEAD + FOUNDER + '[signatures]\nlines = ["— name"]\n', r"lines\[0\]: expected '— <key name> <base64>'"),
    "line-bad-name": (HEAD + FOUNDER + '[signatures]\nlines = ["— a\\u0001b AAAAAAA="]\n', r"lines\[0\]: key name must not contain control"),
    "line-bad-base64": (HEAD + FOUNDER + f'[signatures]\nlines = ["{ATHENS_LINE}="]\n', r"lines\[0\]: signature must be canonical standard base64"),
    "line-two-spaces": (HEAD + FOUNDER + f'[signatures]\nlines = ["{ATHENS_LINE.replace(" ", "  ", 1)}"]\n', r"lines\[0\]: key name must not be empty"),
    "line-short": (HEAD + FOUNDER + '[signatures]\nlines = ["— x AAAAAA=="]\n', r"lines\[0\]: signature has 4 bytes"),
    "line-newline": (HEAD + FOUNDER + f'[signatures]\nlines = ["{ATHENS_LINE}\\n"]\n', r"lines\[0\]: signature must be canonical"),
    "duplicate-line": (
        HEAD + FOUNDER + f'[signatures]\nlines = ["{ATHENS_LINE}", "{ATHENS_LINE}"]\n',
        r"signatures\.lines\[1\]: a second signature by key athens",
    ),
    "too-large": (GOOD + "#" + "\u00e9" * (MAX_FILE_SIZE // 2), r"network file: 10\d{5} bytes, at most 1048576 allowed"),
    "too-many-characters": ("#" * (MAX_FILE_SIZE + 1), "network file: more than 1048576 bytes"),
    "lone-surrogate": (HEAD + FOUNDER.replace("Athens", "\ud800"), "network file: not valid unicode"),
}


@pytest.mark.parametrize(("text", "match"), MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_files(text: str, match: str) -> None:
    with pytest.raises(NetworkFileError, match=match):
        parse_network_file(text)


@pytest.mark.parametrize("value", [b"[network]", None, 7, ["x"]])
def test_parse_refuses_non_text(value: object) -> None:
    with pytest.raises(NetworkFileError, match="network file: expected text"):
        parse_network_file(value)  # type: ignore[arg-type]


def test_inline_tables_are_the_same_file() -> None:
    # TOML has several spellings of one value; the file is its value.
    text = (
        'network = {name = "n", min_vouches = 2, share_percent = 50}\n'
        f'founders = [{{name = "Athens", key = "{ATHENS.verifier}", url = "https://athens.example/"}}]\n'
    )
    assert parse_network_file(text) == parse_network_file(HEAD + FOUNDER)


def _parse_or_protocol_error(text: str) -> None:
    try:
        nf = parse_network_file(text)
    except NetworkFileError:
        return
    # Whatever parses formats and parses again to the same value.
    assert parse_network_file(format_network_file(nf)) == nf
    try:
        verify_network_signatures(nf)
    except SignatureError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_random_text_raises_only_network_file_error(text: str) -> None:
    _parse_or_protocol_error(text)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_files_raise_only_protocol_errors(data) -> None:
    text = GOOD
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace"]))
        piece = data.draw(st.sampled_from(['"', "[", "]", "\n", "=", "#", "\\", "0", "a", " ", "—", ",", "{", "\x00"]))
        if action == "insert":
            text = text[:at] + piece + text[at:]
        elif action == "delete":
            text = text[:at] + text[at + 1 :]
        else:
            text = text[:at] + piece + text[at + 1 :]
    try:
        _parse_or_protocol_error(text)
    except ProtocolError as exc:  # pragma: no cover - a failure message
        raise AssertionError(f"unexpected {type(exc).__name__}: {exc}") from exc
