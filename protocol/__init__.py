"""The solidarity-node protocol library: bytes and values in, values or typed errors out.

No networking, storage, clock or randomness lives here (time, salts and key
seeds are arguments), so every function is deterministic and testable with
known answers. Modules, one concept each:

- ``errors``: the exception hierarchy.
- ``encoding``: canonical MessagePack.
- ``entry``: log entries and salted bodies.
- ``schema``: event-type schemas (JSON Schema documents are passed in).
- ``keys``: Ed25519 keys, C2SP verifier-key strings, PEM files.
- ``note``: C2SP signed notes.
- ``checkpoint``: C2SP tlog checkpoints.
- ``merkle``: RFC 9162 trees, inclusion and consistency proofs.
- ``tiles``: C2SP tlog-tiles coordinates, paths and entry bundles.
- ``evidence``: proof that a log signed two histories.
"""
