"""Fixtures for node tests: real data folders under tmp_path, deterministic keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from node.local import init_node


def seed_for(name: str) -> bytes:
    """Deterministic key seed per test city (tests never depend on os.urandom)."""
    return hashlib.sha256(b"solidarity-test-seed:" + name.encode()).digest()


@pytest.fixture
def make_node(tmp_path: Path):
    """Create nodes in tmp_path; each is closed after the test."""
    made = []

    def make(name: str = "Athens", *, port: int = 8701, **kwargs):
        data = tmp_path / name.lower()
        slug = name.lower().replace(" ", "-")
        node, _ = init_node(
            data,
            city=name,
            country=kwargs.pop("country", "GR"),
            url=kwargs.pop("url", f"http://127.0.0.1:{port}/{slug}"),
            network=kwargs.pop("network", "test-net"),
            seed=seed_for(name),
            **kwargs,
        )
        made.append(node)
        return node

    yield make
    for node in made:
        node.close()


PLEDGE = {"kind": "relocation", "places": 50, "from": "2026-01-01", "until": "2026-06-30"}
OFFER = {
    "category": "reception-places",
    "quantity": 10,
    "unit": "places",
    "from": "2026-01-01",
    "until": "2026-12-31",
    "description": "Ten places in the municipal reception centre.",
}
