"""Test helper run as a separate process: append events one by one, forever or N times.

Prints each entry id after its transaction committed (flushed), so the parent
knows which appends were reported as successful before it kills this process.
"""

from __future__ import annotations

import sys

from node.authoring import Event
from node.config import load_config
from node.local import open_node


def main() -> None:
    data, count, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    node = open_node(load_config(data))
    body = {"kind": "relocation", "places": 5, "from": "2026-01-01", "until": "2026-06-30"}
    n = 0
    while count == 0 or n < count:
        for authored in node.author().append([Event(type="pledge", body=body)] * batch):
            print(authored.id.hex(), flush=True)
        n += 1


if __name__ == "__main__":
    main()
