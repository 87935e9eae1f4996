"""Who is a member of the network: founders, vouches and revokes, folded deterministically.

The network file names the founders (:mod:`protocol.network`); after that,
members admit a city by writing ``vouch`` entries for its verifier key in
their own logs, and remove one with ``revoke`` entries.  Every node reads the
same logs, so every node must reach the same membership from the same votes,
whatever order it learned them in.  The rule is a fixpoint over sets, so it
depends only on the set of votes::

    R = {}                                   # revoked keys: only ever grows, so the loop ends
    loop:
        M = admission fixpoint: M0 = founders - R;
            M_{i+1} = M_i ∪ {k ∉ R : |{v ∈ M_i : v vouched for k}| >= rule.needed(|M_i|)}
            until no change  (votes by keys in R never count)
        R' = R ∪ revocation fixpoint over M: repeat: add every k ∈ M - R' with
             |{v ∈ M - R' : v revoked k}| >= rule.needed(|M - R'|)  until no change
        if R' == R: return Membership(members=M, revoked=R, ...)
        R = R'

where ``rule.needed(n) = max(min_vouches, n * share_percent // 100 + 1)``.
Consequences:

- revocation wins over admission: a revoked key is never admitted again by
  this rule (a city that must come back does so with a new key);
- a revoked city's vouches and revokes stop counting, so a city admitted only
  thanks to a revoked city's vouch loses its membership too (M is recomputed
  from the founders, never patched);
- founders can be revoked like any member;
- a vouch for one's own key is ignored; a revoke of one's own key counts
  (a city may ask to leave, but the members still decide);
- the same vote given twice (the same voter, subject and kind) counts once;
- keys are opaque strings here: the caller has checked the entries that carry
  the votes (signatures, schemas) and passes verifier key strings.

Each admitted city is described by one of its vouches (its origin, name and
node URL, as the vouching city wrote them): the vouch by a final member with
the smallest (voter, ref), so every node picks the same one.

A vote, as a node reads it from a ``vouch`` entry at the log of Athens::

    Vote(voter="athens.example/solidarity+86cefb4e+AVXY...", subject="lyon.example/log+...",
         kind="vouch", origin="lyon.example/log", url="https://lyon.example/", name="Lyon",
         ref="<entry id, 64 lowercase hex>")
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from protocol.errors import ProtocolError, preview
from protocol.network import AdmissionRule

__all__ = ["REVOKE", "VOUCH", "Membership", "Vote", "compute_membership"]

VOUCH = "vouch"
REVOKE = "revoke"


@dataclass(frozen=True, slots=True, kw_only=True)
class Vote:
    """One city's vouch for, or revoke of, a verifier key.

    ``voter`` and ``subject`` are verifier key strings; ``origin``, ``url``
    and ``name`` come from a vouch's body (empty for a revoke); ``ref`` is the
    vote's entry id in hex, which only breaks ties when choosing the vouch
    that describes an admitted city.
    """

    voter: str
    subject: str
    kind: str
    origin: str = ""
    url: str = ""
    name: str = ""
    ref: str = ""

    def __post_init__(self) -> None:
        for name in ("voter", "subject", "kind", "origin", "url", "name", "ref"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ProtocolError(f"vote {name}: expected a string, got {type(value).__name__}")
        if self.kind not in (VOUCH, REVOKE):
            raise ProtocolError(f"vote kind: expected 'vouch' or 'revoke', got {preview(self.kind)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Membership:
    """The network's members, as every node computes them from the same votes.

    ``members`` and ``revoked`` are disjoint sets of verifier key strings;
    ``founders`` is every key the network file names, revoked or not;
    ``admitted`` maps each member that is not a founder to the vouch that
    describes it.
    """

    members: frozenset[str]
    revoked: frozenset[str]
    admitted: Mapping[str, Vote] = field(hash=False)
    founders: frozenset[str]

    def is_member(self, key: str) -> bool:
        """Whether the verifier key string ``key`` is a current member."""
        return key in self.members


def compute_membership(
    founders: Iterable[str], rule: AdmissionRule, votes: Iterable[Vote]
) -> Membership:
    """The membership that ``votes`` give a network founded by ``founders`` (see the module rule).

    Runs in about O(revocations × admission rounds × votes), which is small
    for networks of hundreds of cities.
    """
    if not isinstance(rule, AdmissionRule):
        raise ProtocolError(f"rule: expected an AdmissionRule, got {type(rule).__name__}")
    if isinstance(founders, str):
        raise ProtocolError("founders: expected an iterable of key strings, got one string")
    founder_set = frozenset(founders)
    for key in founder_set:
        if not isinstance(key, str):
            raise ProtocolError(f"founders: expected key strings, got {type(key).__name__}")
    # Sets make duplicates count once and make the result independent of
    # the order votes arrive in.
    vouchers: dict[str, set[str]] = {}
    revokers: dict[str, set[str]] = {}
    vouches: dict[str, list[Vote]] = {}
    for vote in votes:
        if not isinstance(vote, Vote):
            raise ProtocolError(f"votes: expected Vote, got {type(vote).__name__}")
        if vote.kind == VOUCH:
            if vote.voter == vote.subject:
                continue  # nobody vouches for themselves
            vouchers.setdefault(vote.subject, set()).add(vote.voter)
            vouches.setdefault(vote.subject, []).append(vote)
        else:
            revokers.setdefault(vote.subject, set()).add(vote.voter)

    revoked: frozenset[str] = frozenset()
    while True:
        members = _admit(founder_set - revoked, revoked, rule, vouchers)
        more = _revoke(members, revoked, rule, revokers)
        if more == revoked:
            break
        revoked = more

    admitted = {
        key: min(
            (v for v in vouches[key] if v.voter in members),
            key=lambda v: (v.voter, v.ref, v.origin, v.url, v.name),
        )
        for key in sorted(members - founder_set)
    }
    return Membership(
        members=members,
        revoked=revoked,
        admitted=MappingProxyType(admitted),
        founders=founder_set,
    )


def _admit(
    start: frozenset[str], revoked: frozenset[str], rule: AdmissionRule, vouchers: dict[str, set[str]]
) -> frozenset[str]:
    """The admission fixpoint from ``start``: each round counts vouches by the previous round's members."""
    members = start
    while True:
        needed = rule.needed(len(members))
        new = {
            key
            for key, voters in vouchers.items()
            if key not in members and key not in revoked and len(voters & members) >= needed
        }
        if not new:
            return members
        members = members | new


def _revoke(
    members: frozenset[str], revoked: frozenset[str], rule: AdmissionRule, revokers: dict[str, set[str]]
) -> frozenset[str]:
    """``revoked`` plus the revocation fixpoint over ``members``."""
    remaining = members - revoked
    out = set(revoked)
    while True:
        needed = rule.needed(len(remaining))
        new = {key for key in remaining if len(revokers.get(key, set()) & remaining) >= needed}
        if not new:
            return frozenset(out)
        out |= new
        remaining = remaining - new
