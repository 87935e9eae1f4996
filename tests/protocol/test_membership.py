"""Deterministic membership from founders, vouches and revokes (protocol/membership.py).

Keys are opaque strings here: short names stand for verifier key strings.
"""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import NetworkFileError, ProtocolError
from protocol.membership import Membership, Vote, compute_membership
from protocol.network import AdmissionRule

# needed(n) == min_vouches for every n: the simplest rule to reason about.
ONE = AdmissionRule(min_vouches=1, share_percent=0)
TWO = AdmissionRule(min_vouches=2, share_percent=0)
MAJORITY = AdmissionRule(min_vouches=1, share_percent=50)


def vouch(voter: str, subject: str, ref: str = "", **details: str) -> Vote:
    return Vote(voter=voter, subject=subject, kind="vouch", ref=ref, **details)


def revoke(voter: str, subject: str, ref: str = "") -> Vote:
    return Vote(voter=voter, subject=subject, kind="revoke", ref=ref)


def members(founders: Iterable[str], rule: AdmissionRule, votes: Iterable[Vote]) -> set[str]:
    return set(compute_membership(founders, rule, votes).members)


# --- admission --------------------------------------------------------------------


def test_founders_only() -> None:
    m = compute_membership(["A", "B", "A"], MAJORITY, [])
    assert m == Membership(
        members=frozenset({"A", "B"}), revoked=frozenset(), admitted={}, founders=frozenset({"A", "B"})
    )
    assert m.is_member("A") and not m.is_member("C")
    assert compute_membership([], ONE, [vouch("A", "B")]).members == frozenset()


@pytest.mark.parametrize("founder_count", [1, 2, 3, 4, 5, 7, 10])
@pytest.mark.parametrize(
    "rule",
    [ONE, TWO, MAJORITY, AdmissionRule(min_vouches=2, share_percent=50), AdmissionRule(min_vouches=1, share_percent=66)],
    ids=["one", "two", "majority", "two-or-majority", "two-thirds"],
)
def test_admitted_exactly_when_the_rule_is_met(founder_count: int, rule: AdmissionRule) -> None:
    founders = [f"F{i}" for i in range(founder_count)]
    need = rule.needed(founder_count)
    if need > founder_count:
        # Not enough founders to admit anyone: every founder vouching is not enough.
        assert "X" not in members(founders, rule, [vouch(f, "X") for f in founders])
        return
    short = [vouch(f, "X") for f in founders[: need - 1]]
    assert "X" not in members(founders, rule, short)
    m = compute_membership(founders, rule, short + [vouch(founders[need - 1], "X")])
    assert "X" in m.members
    assert m.admitted["X"].voter == "F0"


def test_needed_grows_with_members_round_by_round() -> None:
    # needed(3) = 2, needed(4) = 3 (strict majority).
    founders = ["F1", "F2", "F3"]
    votes = [vouch("F1", "X"), vouch("F2", "X"), vouch("F1", "Y"), vouch("F2", "Y")]
    # X and Y are counted against the same round (M0, 3 members): both admitted.
    assert members(founders, MAJORITY, votes) == {"F1", "F2", "F3", "X", "Y"}
    # Z, vouched by two members only, is short once X and Y are in (needed(5) = 3).
    assert "Z" not in members(founders, MAJORITY, votes + [vouch("X", "Z"), vouch("Y", "Z")])
    assert "Z" in members(founders, MAJORITY, votes + [vouch("X", "Z"), vouch("Y", "Z"), vouch("F3", "Z")])


def test_chains() -> None:
    votes = [vouch("F", "A"), vouch("A", "B"), vouch("B", "C")]
    m = compute_membership(["F"], ONE, votes)
    assert m.members == {"F", "A", "B", "C"}
    assert {k: v.voter for k, v in m.admitted.items()} == {"A": "F", "B": "A", "C": "B"}
    # With two vouches needed, A (admitted) and a founder together admit B.
    votes = [vouch("F1", "A"), vouch("F2", "A"), vouch("A", "B"), vouch("F1", "B")]
    assert members(["F1", "F2"], TWO, votes) == {"F1", "F2", "A", "B"}
    assert members(["F1", "F2"], TWO, votes[:-1]) == {"F1", "F2", "A"}


def test_circular_vouching_by_non_members_admits_nobody() -> None:
    ring = [f"X{i}" for i in range(6)]
    votes = [vouch(a, b) for a in ring for b in ring]  # everyone vouches for everyone (and itself)
    assert members(["F"], ONE, votes) == {"F"}
    assert members(["F"], ONE, [vouch("X", "Y"), vouch("Y", "X")]) == {"F"}
    # One real vouch brings the ring in, through the chain.
    assert members(["F"], ONE, votes + [vouch("F", "X0")]) == {"F", *ring}


def test_self_vouch_is_ignored() -> None:
    votes = [vouch("F1", "F1"), vouch("F1", "X"), vouch("X", "X")]
    assert "X" not in members(["F1", "F2"], TWO, votes)
    assert "X" in members(["F1", "F2"], TWO, votes + [vouch("F2", "X")])


def test_duplicate_votes_count_once() -> None:
    votes = [vouch("F1", "X", "01"), vouch("F1", "X", "02"), vouch("F1", "X", "01")]
    assert "X" not in members(["F1", "F2"], TWO, votes)
    revokes = [revoke("F1", "F2", "01"), revoke("F1", "F2", "02")]
    assert members(["F1", "F2", "F3"], TWO, revokes) == {"F1", "F2", "F3"}


def test_admitted_is_described_by_the_smallest_voter_and_ref() -> None:
    votes = [
        vouch("F2", "X", "aa", name="X from F2"),
        vouch("F1", "X", "bb", name="X from F1, later", origin="x.example/log", url="https://x.example/"),
        vouch("F1", "X", "ab", name="X from F1"),
        vouch("Q", "X", "00", name="X from a non-member"),
    ]
    for _ in range(5):
        random.Random(7).shuffle(votes)
        m = compute_membership(["F1", "F2", "F3"], TWO, votes)
        assert m.admitted["X"] == votes[[v.name for v in votes].index("X from F1")]
    # A founder is never described by a vouch; neither is a revoked city.
    m = compute_membership(["F1", "F2"], ONE, [vouch("F1", "F2"), vouch("F1", "X"), revoke("F1", "X")])
    assert dict(m.admitted) == {}


# --- revocation -------------------------------------------------------------------


def test_revocation_removes_a_member() -> None:
    votes = [vouch("F1", "X"), vouch("F2", "X"), revoke("F1", "X")]
    m = compute_membership(["F1", "F2", "F3"], TWO, votes)
    assert "X" in m.members and not m.revoked
    m = compute_membership(["F1", "F2", "F3"], TWO, votes + [revoke("F3", "X")])
    assert "X" not in m.members
    assert m.revoked == {"X"}
    assert "X" not in m.admitted


def test_revocation_wins_over_admission_and_is_permanent() -> None:
    votes = [vouch(f, "X") for f in ("F1", "F2", "F3")] + [revoke("F1", "X"), revoke("F2", "X")]
    m = compute_membership(["F1", "F2", "F3"], TWO, votes)
    assert m.revoked == {"X"} and "X" not in m.members
    # More vouches, even by everyone, do not bring the same key back.
    more = votes + [vouch("F1", "X", "later"), vouch("F2", "X", "later")]
    assert compute_membership(["F1", "F2", "F3"], TWO, more) == m


def test_revoked_city_vouches_stop_counting() -> None:
    # R was admitted by the founders; only R vouched for X, only X for Y.
    votes = [vouch("F1", "R"), vouch("R", "X"), vouch("X", "Y")]
    assert members(["F1", "F2"], ONE, votes) == {"F1", "F2", "R", "X", "Y"}
    m = compute_membership(["F1", "F2"], ONE, votes + [revoke("F2", "R")])
    assert m.members == {"F1", "F2"}
    # X and Y were not revoked, they lost the vouches that admitted them:
    # a new vouch by a member brings them back.
    assert m.revoked == {"R"}
    assert members(["F1", "F2"], ONE, votes + [revoke("F2", "R"), vouch("F1", "X")]) == {"F1", "F2", "X", "Y"}


def test_revoked_city_revokes_stop_counting() -> None:
    # Six founders, strict majority: needed(6) = 4, then needed(4) = 3.
    founders = [f"F{i}" for i in range(1, 7)]
    base = [revoke(v, k) for v in ("F1", "F2", "F3", "F4") for k in ("F5", "F6")]
    # F1, F2, F3 revoke F4: 3 of 6 members is short of 4 in the first round,
    # 3 of the 4 left is enough in the second.
    m = compute_membership(founders, MAJORITY, base + [revoke(v, "F4") for v in ("F1", "F2", "F3")])
    assert m.revoked == {"F4", "F5", "F6"}
    assert m.members == {"F1", "F2", "F3"}
    # F5, F6 and F1 revoke F4: three again, but by the second round F5's and
    # F6's revokes no longer count.
    m = compute_membership(founders, MAJORITY, base + [revoke(v, "F4") for v in ("F5", "F6", "F1")])
    assert m.revoked == {"F5", "F6"}
    assert m.members == {"F1", "F2", "F3", "F4"}


def test_revokes_by_non_members_do_not_count() -> None:
    votes = [revoke("Q1", "F1"), revoke("Q2", "F1"), revoke("Q3", "F1")]
    assert members(["F1", "F2"], ONE, votes) == {"F1", "F2"}


def test_revoking_a_non_member_records_nothing() -> None:
    m = compute_membership(["F1", "F2"], ONE, [revoke("F1", "X"), revoke("F2", "X")])
    assert m.revoked == frozenset() and m.members == {"F1", "F2"}
    # The revokes still count once X is admitted: X is revoked right away.
    m = compute_membership(["F1", "F2"], ONE, [revoke("F1", "X"), vouch("F2", "X")])
    assert m.revoked == {"X"} and m.members == {"F1", "F2"}


def test_founders_can_be_revoked() -> None:
    founders = ["F1", "F2", "F3"]
    m = compute_membership(founders, TWO, [revoke("F1", "F3"), revoke("F2", "F3")])
    assert m.members == {"F1", "F2"}
    assert m.revoked == {"F3"}
    assert m.founders == set(founders)
    # A city may ask to leave; its own revoke counts, the others decide.
    assert members(founders, TWO, [revoke("F3", "F3")]) == set(founders)
    assert members(founders, TWO, [revoke("F3", "F3"), revoke("F1", "F3")]) == {"F1", "F2"}


def test_revoking_every_founder_leaves_nobody() -> None:
    founders = ["F1", "F2"]
    votes = [revoke(a, b) for a in founders for b in founders] + [vouch("F1", "X")]
    m = compute_membership(founders, ONE, votes)
    assert m.members == frozenset()
    assert m.revoked == set(founders)


# --- AdmissionRule.needed ---------------------------------------------------------


@pytest.mark.parametrize(
    ("min_vouches", "share_percent", "count", "needed"),
    [
        (1, 0, 0, 1),
        (1, 0, 1000, 1),
        (2, 50, 0, 2),
        (2, 50, 1, 2),
        (2, 50, 2, 2),
        (2, 50, 3, 2),
        (2, 50, 4, 3),
        (2, 50, 5, 3),
        (1, 50, 1, 1),
        (1, 66, 3, 2),
        (1, 67, 3, 3),
        (1, 99, 100, 100),
        (1, 99, 1, 1),
        (1000, 99, 10, 1000),
        (3, 10, 10**9, 10**8 + 1),
    ],
)
def test_needed(min_vouches: int, share_percent: int, count: int, needed: int) -> None:
    assert AdmissionRule(min_vouches=min_vouches, share_percent=share_percent).needed(count) == needed


def test_needed_refuses_negative_counts() -> None:
    with pytest.raises(NetworkFileError, match="member count"):
        ONE.needed(-1)


# --- properties -------------------------------------------------------------------

KEYS = ["F0", "F1", "F2", "F3", "X0", "X1", "X2", "X3", "X4"]
votes_strategy = st.lists(
    st.builds(
        Vote,
        voter=st.sampled_from(KEYS),
        subject=st.sampled_from(KEYS),
        kind=st.sampled_from(["vouch", "revoke"]),
        ref=st.sampled_from(["", "00", "01", "ff"]),
        name=st.sampled_from(["", "a", "b"]),
    ),
    max_size=40,
)
rules_strategy = st.builds(AdmissionRule, min_vouches=st.integers(1, 4), share_percent=st.integers(0, 99))
founders_strategy = st.lists(st.sampled_from(KEYS[:4]), unique=True, max_size=4)


def reference(founders: list[str], rule: AdmissionRule, votes: list[Vote]) -> tuple[set[str], set[str]]:
    """The module docstring's rule, transcribed as literally as possible."""
    vouched = {(v.voter, v.subject) for v in votes if v.kind == "vouch" and v.voter != v.subject}
    revoked_by = {(v.voter, v.subject) for v in votes if v.kind == "revoke"}
    everyone = {v.subject for v in votes} | set(founders)
    R: set[str] = set()
    while True:
        M = set(founders) - R
        while True:
            add = {k for k in everyone - R if len({v for v in M if (v, k) in vouched}) >= rule.needed(len(M))}
            if add <= M:
                break
            M |= add
        R2 = set(R)
        while True:
            live = M - R2
            add = {k for k in live if len({v for v in live if (v, k) in revoked_by}) >= rule.needed(len(live))}
            if not add:
                break
            R2 |= add
        if R2 == R:
            return M, R
        R = R2


@settings(max_examples=150, deadline=None)
@given(founders_strategy, rules_strategy, votes_strategy, st.randoms(use_true_random=False))
def test_order_independent_and_matches_the_rule(
    founders: list[str], rule: AdmissionRule, votes: list[Vote], rnd: random.Random
) -> None:
    m = compute_membership(founders, rule, votes)
    shuffled = votes + votes[: len(votes) // 2]  # duplicates too
    rnd.shuffle(shuffled)
    assert compute_membership(reversed(founders), rule, iter(shuffled)) == m
    assert (set(m.members), set(m.revoked)) == reference(founders, rule, votes)


@settings(max_examples=150, deadline=None)
@given(founders_strategy, rules_strategy, votes_strategy)
def test_invariants(founders: list[str], rule: AdmissionRule, votes: list[Vote]) -> None:
    m = compute_membership(founders, rule, votes)
    vouched = {(v.voter, v.subject) for v in votes if v.kind == "vouch" and v.voter != v.subject}
    revoked_by = {(v.voter, v.subject) for v in votes if v.kind == "revoke"}
    assert m.members <= set(founders) | {s for _, s in vouched}
    assert not m.members & m.revoked
    assert m.revoked <= set(founders) | {s for _, s in vouched}
    assert m.founders == set(founders)
    assert set(m.admitted) == m.members - m.founders
    needed = rule.needed(len(m.members))
    for key in m.members:
        # Stable: no member has enough revokes from the members.
        assert len({v for v in m.members if (v, key) in revoked_by}) < needed
    for key in {s for _, s in vouched} - m.members - m.revoked:
        # Closed: no outsider has enough vouches from the members.
        assert len({v for v in m.members if (v, key) in vouched}) < needed
    for key, vote in m.admitted.items():
        assert vote.kind == "vouch" and vote.subject == key and vote.voter in m.members
        candidates = [v for v in votes if v.kind == "vouch" and v.subject == key and v.voter in m.members and v.voter != v.subject]
        assert (vote.voter, vote.ref) == min((v.voter, v.ref) for v in candidates)


def test_large_network_is_fast() -> None:
    # 400 cities admitted in a chain of 2-vouch steps, then a tenth revoked.
    rule = AdmissionRule(min_vouches=2, share_percent=0)
    founders = ["C0", "C1"]
    votes = []
    for i in range(2, 400):
        votes += [vouch(f"C{i - 1}", f"C{i}", "a"), vouch(f"C{i - 2}", f"C{i}", "b")]
    m = compute_membership(founders, rule, votes)
    assert len(m.members) == 400
    votes += [revoke(f"C{j}", f"C{i}") for i in range(300, 400, 10) for j in (0, 1)]
    m = compute_membership(founders, rule, votes)
    # C300 and after are out: ten revoked, the rest lost the vouches that admitted them.
    assert m.members == {f"C{i}" for i in range(300)}
    assert m.revoked == {f"C{i}" for i in range(300, 400, 10)}


# --- hostile inputs ---------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", " ", "+", "a" * 100_000, "\x00", "\ud800", "é+00000000+AAAA", "line\nbreak", "F1 "],
    ids=["empty", "space", "plus", "huge", "nul", "surrogate", "looks-like-key", "newline", "near-founder"],
)
def test_junk_key_strings_are_opaque(key: str) -> None:
    m = compute_membership(["F1", "F2"], ONE, [vouch("F1", key), vouch(key, "Y"), revoke(key, "F2")])
    assert key in m.members and "Y" in m.members
    assert m.revoked == {"F2"}


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: Vote(voter="A", subject="B", kind="Vouch"), "vote kind: expected 'vouch' or 'revoke', got 'Vouch'"),
        (lambda: Vote(voter="A", subject=b"B", kind="vouch"), "vote subject: expected a string, got bytes"),
        (lambda: Vote(voter=None, subject="B", kind="vouch"), "vote voter: expected a string"),
        (lambda: Vote(voter="A", subject="B", kind="vouch", ref=1), "vote ref: expected a string"),
        (lambda: compute_membership(["A"], ONE, [("A", "B", "vouch")]), "votes: expected Vote, got tuple"),
        (lambda: compute_membership(["A"], {"min_vouches": 1}, []), "rule: expected an AdmissionRule"),
        (lambda: compute_membership("AB", ONE, []), "founders: expected an iterable of key strings"),
        (lambda: compute_membership([b"A"], ONE, []), "founders: expected key strings, got bytes"),
    ],
)
def test_refuses_wrong_types(call, match: str) -> None:
    with pytest.raises(ProtocolError, match=match):
        call()
