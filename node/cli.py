"""The ``solidarity`` command line.

Each command builds a configuration and calls the same code the server uses.
Authoring commands get one option per body field, generated from the event
type's schema in ``schemas/``, so the command line and the schemas cannot
drift apart. User mistakes print one line to stderr and exit 1 (2 for usage
errors); a traceback means a bug.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import schemas
from node.config import DEFAULT_DATA_DIR, DEFAULT_LISTEN, load_config
from protocol.errors import SolidarityError

log = logging.getLogger(__name__)

#: Authoring commands and the event type each appends.
EVENT_COMMANDS = {
    "pledge": "pledge",
    "offer": "offer",
    "request": "request",
    "progress": "progress",
    "accept": "accept",
    "retract": "retract",
    "report": "report",
    "statement": "statement",
    "endorse": "endorse",
    "vouch": "vouch",
    "revoke": "revoke",
    "profile": "city",
}

EPILOG = "Documentation: docs/operating.md (running a node), docs/events.md (event fields)."


class CliError(Exception):
    """A user mistake found by the CLI itself (exit 1)."""


def _latest_documents() -> dict[str, dict]:
    latest: dict[str, tuple[int, dict]] = {}
    for (type_, version), doc in schemas.load_documents().items():
        if type_ not in latest or version > latest[type_][0]:
            latest[type_] = (version, doc)
    return {t: d for t, (_, d) in latest.items()}


def _option(field: str) -> str:
    return "--" + field.replace("_", "-")


def _field_help(prop: dict) -> str:
    text = prop.get("description", "")
    if "enum" in prop:
        text += " One of: " + ", ".join(map(str, prop["enum"])) + "."
    if prop.get("type") == "array":
        text += " Comma-separated."
    return text.replace("%", "%%")


def _parse_field(prop: dict, raw: str) -> Any:
    kind = prop.get("type")
    if kind == "integer":
        try:
            return int(raw)
        except ValueError:
            return raw  # the schema check names the field and says an integer is expected
    if kind == "array":
        return [part.strip() for part in raw.split(",") if part.strip()]
    return raw


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        type=Path,
        default=Path(os.environ.get("SOLIDARITY_DATA", DEFAULT_DATA_DIR)),
        help=f"the node's data folder (default {DEFAULT_DATA_DIR}, or $SOLIDARITY_DATA)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="solidarity",
        description="Run a Solidarity Cities node: your city's signed log of pledges, offers and "
        "requests, and verified copies of every other member city's log.",
        epilog=EPILOG,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("init", help="create a node for your city", description=(
        "Create the data folder, the city's Ed25519 key, the log (its origin is fixed from now on), "
        "a documented config.toml, the database, and entry 0: the city's profile. Prints the "
        "city's verifier key, which other cities need to admit you."))
    _add_common(p)
    p.add_argument("--city", required=True, help="the city's name")
    p.add_argument("--country", required=True, help="ISO 3166-1 alpha-2 country code, e.g. GR")
    p.add_argument("--url", required=True, help="public URL of this node, e.g. https://solidarity.athens.gr")
    p.add_argument("--network", required=True, help="the network's name, e.g. solidarity-cities")
    p.add_argument("--contact", help="organisational e-mail (default solidarity@<host of --url>)")
    p.add_argument("--languages", help="comma-separated ISO 639-1 codes (default en)")
    p.add_argument("--listen", help=f"HOST:PORT for 'serve' (default {DEFAULT_LISTEN})")
    p.add_argument("--passphrase-file", type=Path, help="encrypt the key with the passphrase in this file")
    p.add_argument("--network-file", type=Path, help="install this network file (a city joining later)")
    p.set_defaults(func=cmd_init)

    documents = _latest_documents()
    for command, event_type in EVENT_COMMANDS.items():
        doc = documents.get(event_type)
        if doc is None:
            continue
        verb = "update the city's profile" if command == "profile" else f"append a {event_type} event"
        p = sub.add_parser(command, help=verb, description=(
            f"{doc.get('description', '')} Appends one entry to your city's log and signs a new "
            "checkpoint; prints the entry id. Entries cannot be changed later: use --dry-run to preview."
        ).replace("%", "%%"))
        _add_common(p)
        required = set(doc.get("required", ()))
        for field, prop in doc.get("properties", {}).items():
            mark = "" if command == "profile" or field not in required else " (required)"
            p.add_argument(_option(field), dest=f"field_{field}", metavar="VALUE", help=_field_help(prop) + mark)
        p.add_argument("--dry-run", action="store_true", help="show the entry that would be appended; write nothing")
        p.add_argument("--json", action="store_true", help="print the entry as JSON")
        p.set_defaults(func=cmd_event, event_type=event_type, properties=doc.get("properties", {}))

    p = sub.add_parser("import", help="append many events from JSON lines", description=(
        'Append events from a JSON lines file, one {"type": ..., "body": {...}} per line ("-" reads '
        "stdin). Every line is validated first; one bad line rejects the whole file and nothing is "
        "written. A good file is appended in one transaction under one new checkpoint."))
    _add_common(p)
    p.add_argument("file", help="JSON lines file, or - for standard input")
    p.add_argument("--dry-run", action="store_true", help="validate and count; write nothing")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("log", help="list the city's own entries", description="The city's entries, newest last.")
    _add_common(p)
    p.add_argument("--json", action="store_true", help="JSON lines, one entry each")
    p.set_defaults(func=cmd_log)

    p = sub.add_parser("key", help="show the city's verifier key")
    _add_common(p)
    key_sub = p.add_subparsers(dest="key_command", metavar="KEY_COMMAND", required=True)
    kp = key_sub.add_parser("show", help="print the verifier key (name+id+key), as other cities need it")
    _add_common(kp)
    kp.set_defaults(func=cmd_key_show)

    p = sub.add_parser("backup", help="copy the database consistently while the node runs", description=(
        "Copy the database with SQLite's online backup API (consistent even while serve and the CLI "
        "write), then audit the copy. Back up the key and config.toml separately."))
    _add_common(p)
    p.add_argument("out", type=Path, help="the backup file to write (must not exist)")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("restore", help="put a verified backup in place (stop serve first)", description=(
        "Audit the backup, then replace the database with it. The node then refuses to author until it "
        "has fetched its own log from a peer (sync or serve), so a restore never forks the city's log."))
    _add_common(p)
    p.add_argument("backup", type=Path, help="a file written by 'solidarity backup'")
    p.set_defaults(func=cmd_restore)

    p = sub.add_parser("resume-authoring", help="override the post-restore catch-up (logged)", description=(
        "Allow authoring on a restored node that could not fetch its own log from any peer. Only do "
        "this if you are sure no peer holds newer entries of your city: otherwise you sign a second "
        "history and every node will show your city as equivocating."))
    _add_common(p)
    p.add_argument("--force", action="store_true", required=True, help="yes, I am sure")
    p.set_defaults(func=cmd_resume_authoring)

    p = sub.add_parser("reindex", help="rebuild the network view from the logs", description=(
        "Drop the network view (pledges, offers, requests, ... as the query API shows them) and "
        "build it again from every log held. Safe at any time: the view holds nothing the logs do not."))
    _add_common(p)
    p.set_defaults(func=cmd_reindex)

    p = sub.add_parser("verify", help="audit every log in the store", description=(
        "Rebuild every log's tree from its entries; check every stored hash, body and checkpoint "
        "signature, and the database file itself. Exits 1 and names the first problem found."))
    _add_common(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("serve", help="run the HTTP service", description=(
        "Serve the node's logs (C2SP tlog-tiles under /v1/logs/<id>/) and its API until stopped."))
    _add_common(p)
    p.add_argument("--listen", help=f"HOST:PORT (default from config, {DEFAULT_LISTEN})")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("network", help="create, sign and install the network file")
    net_sub = p.add_subparsers(dest="network_command", metavar="NETWORK_COMMAND", required=True)
    np_ = net_sub.add_parser("create", help="print a new network file for the founding cities", description=(
        "Print a network file: the network's trust root, naming its founding members and the "
        "admission rule. Founders each run 'init' first and share their verifier keys; then each "
        "signs the file with 'solidarity network sign'."))
    np_.add_argument("--name", required=True, help="the network's name (as given to init --network)")
    np_.add_argument("--quorum", type=int, required=True,
                     help="minimum number of member vouches that admit (or revoke) a city")
    np_.add_argument("--share", type=int, default=50,
                     help="and more than this percentage of current members must vouch (default 50)")
    np_.add_argument("--member", action="append", required=True, metavar="NAME,VERIFIER_KEY,URL",
                     help="a founding city; repeat for each")
    np_.add_argument("--out", type=Path, help="write to this file instead of standard output")
    np_.set_defaults(func=cmd_network_create)
    np_ = net_sub.add_parser("sign", help="add this city's signature to a network file")
    _add_common(np_)
    np_.add_argument("file", type=Path, help="the network file; signed in place")
    np_.set_defaults(func=cmd_network_sign)
    np_ = net_sub.add_parser("join", help="install a network file into this node", description=(
        "Check that the file fits this node (network name, and this city's key if it is a founder), "
        "show who signed it, and install it; 'serve' then syncs with the network."))
    _add_common(np_)
    np_.add_argument("file", type=Path, help="the network file")
    np_.set_defaults(func=cmd_network_join)

    p = sub.add_parser("sync", help="pull every member log once from the peers, then exit")
    _add_common(p)
    p.set_defaults(func=cmd_sync)

    p = sub.add_parser("peers", help="list the peers and whether they answer")
    _add_common(p)
    p.set_defaults(func=cmd_peers)

    p = sub.add_parser("config", help="check the configuration")
    _add_common(p)
    config_sub = p.add_subparsers(dest="config_command", metavar="CONFIG_COMMAND", required=True)
    cp = config_sub.add_parser("check", help="validate config.toml and environment overrides without starting")
    _add_common(cp)
    cp.set_defaults(func=cmd_config_check)

    p = sub.add_parser("demo", help="run a small network of real city nodes on this machine", description=(
        "Create a node per city (its own data folder and key), one network file signed by them all, "
        "serve them on 127.0.0.1, author pledges, offers, requests, accepts and more, wait until gossip "
        "has given every node every log, and print URLs to try. Ctrl-C stops every node."))
    p.add_argument("--cities", type=int, default=3, choices=range(2, 9), metavar="N",
                   help="how many cities, 2 to 8 (default 3)")
    p.add_argument("--dir", type=Path, help="make the data folders here, and keep them (default: a temporary "
                   "folder, removed at exit)")
    p.add_argument("--base-port", type=int, default=0, metavar="PORT",
                   help="listen on PORT, PORT+1, ... (default 0: any free ports)")
    p.add_argument("--exit-after-converge", action="store_true",
                   help="stop once every node holds every log and the URLs answered (for scripts and CI)")
    p.set_defaults(func=cmd_demo)
    return parser


# -- commands ----------------------------------------------------------------


def _open(args: argparse.Namespace, **kwargs):
    from node.local import open_node

    config = load_config(args.data)
    return open_node(config, **kwargs)


def entry_json(authored_entry, entry_bytes: bytes, body: dict | None) -> dict:
    from protocol.entry import entry_id, log_id

    e = authored_entry
    return {
        "id": entry_id(entry_bytes).hex(),
        "log_id": log_id(e.origin),
        "origin": e.origin,
        "network": e.network,
        "seq": e.seq,
        "time_ms": e.time_ms,
        "type": e.type,
        "schema": e.schema,
        "body_hash": e.body_hash.hex(),
        "body_size": e.body_size,
        "body": body,
    }


def cmd_init(args: argparse.Namespace) -> int:
    from node.local import init_node

    passphrase = None
    passphrase_file = ""
    if args.passphrase_file:
        from node.local import read_passphrase

        passphrase = read_passphrase(args.passphrase_file)
        if not passphrase:
            raise CliError(f"--passphrase-file {args.passphrase_file} is empty")
        passphrase_file = str(args.passphrase_file.resolve())
    node, profile = init_node(
        args.data,
        city=args.city,
        country=args.country,
        url=args.url,
        network=args.network,
        contact=args.contact,
        languages=[x.strip() for x in args.languages.split(",")] if args.languages else None,
        passphrase=passphrase,
        passphrase_file=passphrase_file,
        listen=args.listen,
    )
    try:
        if args.network_file:
            _install_network(node.config, _read_network(args.network_file), str(node.signer.verifier))
        print(f"created node for {profile['name']} in {node.config.data_dir}")
        print(f"origin:   {node.config['node.origin']}")
        print(f"profile:  country={profile['country']} contact={profile['contact']} "
              f"languages={','.join(profile['languages'])} (change with 'solidarity profile')")
        print("verifier key (share it with the other cities):")
        print(str(node.signer.verifier))
    finally:
        node.close()
    return 0


def _latest_profile(node) -> dict:
    from protocol.entry import decode_body, decode_entry

    state = node.store.own_log()
    rows = node.store.conn.execute(
        "SELECT entry, body FROM entries WHERE lid = ? ORDER BY seq DESC", (state.lid,)
    )
    for entry_bytes, body in rows:
        if decode_entry(entry_bytes).type == "city" and body is not None:
            return decode_body(body)[1]
    raise CliError("the log holds no city profile")


def _print_authored(args: argparse.Namespace, authored: Sequence, *, dry_run: bool) -> None:
    for a in authored:
        if args.json or dry_run:
            record = entry_json(a.entry, a.entry_bytes, a.body)
            if dry_run:
                record["dry_run"] = True
            print(json.dumps(record, ensure_ascii=False, indent=None if not dry_run else 2))
        else:
            print(a.id.hex())


def cmd_event(args: argparse.Namespace) -> int:
    from node.authoring import Event

    body = {}
    for field, prop in args.properties.items():
        raw = getattr(args, f"field_{field}")
        if raw is not None:
            body[field] = _parse_field(prop, raw)
    node = _open(args)
    try:
        if args.event_type == "city":
            if not body:
                raise CliError("profile: give at least one field to change (see --help)")
            body = {**_latest_profile(node), **body}
        author = node.author()
        events = [Event(type=args.event_type, body=body)]
        authored = author.preview(events) if args.dry_run else author.append(events)
        _print_authored(args, authored, dry_run=args.dry_run)
    finally:
        node.close()
    return 0


def _read_import(path: str) -> list:
    from node.authoring import Event

    if path == "-":
        lines = sys.stdin.read().splitlines()
    else:
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(f"cannot read {path}: {exc}") from exc
    events = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise CliError(f"line {n}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(record, dict) or set(record) - {"type", "body"} or "type" not in record or "body" not in record:
            raise CliError(f'line {n}: expected an object {{"type": ..., "body": {{...}}}} and nothing else')
        if not isinstance(record["type"], str) or not isinstance(record["body"], dict):
            raise CliError(f"line {n}: 'type' must be a string and 'body' an object")
        events.append((n, Event(type=record["type"], body=record["body"])))
    if not events:
        raise CliError(f"{path}: no events to import")
    return events


def cmd_import(args: argparse.Namespace) -> int:
    from protocol.errors import SchemaError

    numbered = _read_import(args.file)
    node = _open(args)
    try:
        author = node.author()
        for n, event in numbered:
            try:
                author.validate([event])
            except SchemaError as exc:
                raise CliError(f"line {n}: {exc}; nothing was imported") from None
        events = [e for _, e in numbered]
        if args.dry_run:
            print(f"{len(events)} events valid; nothing written (dry run)")
            return 0
        authored = author.append(events)
        print(f"imported {len(authored)} events: entries {authored[0].entry.seq} to {authored[-1].entry.seq}")
    finally:
        node.close()
    return 0


def cmd_log(args: argparse.Namespace) -> int:
    from protocol.entry import decode_body, decode_entry

    node = _open(args, readonly=True)
    try:
        state = node.store.own_log()
        for stored in node.store.entries(state.lid):
            entry = decode_entry(stored.entry)
            body = decode_body(stored.body)[1] if stored.body is not None else None
            if args.json:
                print(json.dumps(entry_json(entry, stored.entry, body), ensure_ascii=False))
            else:
                summary = json.dumps(body, ensure_ascii=False) if body is not None else "(body erased)"
                if len(summary) > 100:
                    summary = summary[:97] + "..."
                print(f"{entry.seq:>6}  {stored.leaf.hex()[:16]}  {entry.type:<10} {summary}")
    finally:
        node.close()
    return 0


def cmd_backup(args: argparse.Namespace) -> int:
    from node.backup import backup_node

    results = backup_node(load_config(args.data), args.out)
    print(f"backed up {len(results)} logs, {sum(r.size for r in results)} entries to {args.out} (verified)")
    print("also keep a copy of key.pem (separately and safely) and config.toml")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from node.backup import restore_node

    node = _open(args, readonly=True)
    verifier, config = str(node.signer.verifier), node.config
    node.close()
    results = restore_node(config, args.backup, verifier)
    print(f"restored {len(results)} logs, {sum(r.size for r in results)} entries from {args.backup} (verified)")
    print("authoring waits until this node has fetched its own log from a peer: "
          "run 'solidarity sync' or start 'solidarity serve'")
    return 0


def cmd_resume_authoring(args: argparse.Namespace) -> int:
    from node.backup import mark_caught_up

    node = _open(args)
    try:
        changed = mark_caught_up(node.store, forced=True)
    finally:
        node.close()
    print("authoring resumed (override logged)" if changed else "authoring was not blocked")
    return 0


def cmd_reindex(args: argparse.Namespace) -> int:
    from node.view import ViewUpdater

    node = _open(args)
    try:
        applied = ViewUpdater(node.registry).rebuild(node.store)
    finally:
        node.close()
    print(f"rebuilt the network view from {applied} entries")
    return 0


def cmd_key_show(args: argparse.Namespace) -> int:
    node = _open(args, readonly=True)
    try:
        print(str(node.signer.verifier))
    finally:
        node.close()
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from node.audit import AuditFailure, audit_store
    from node.store import Store

    config = load_config(args.data)
    try:
        store = Store(config.database_path, readonly=True)
    except SolidarityError as exc:
        print(f"solidarity verify: FAILED: {exc}", file=sys.stderr)
        return 1
    try:
        results = audit_store(
            store, progress=lambda r: print(f"ok  {r.origin}  {r.size} entries, {r.bodies} bodies")
        )
    except AuditFailure as exc:
        print(f"solidarity verify: FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"verified {len(results)} logs, {sum(r.size for r in results)} entries")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from node.app import serve
    from node.config import build_config
    from node.local import open_node

    from node.logs import setup_logging

    config = load_config(args.data)
    if args.listen:
        config = build_config(config.data_dir, {**config.values, "http.listen": args.listen}, env={})
    setup_logging(config["logging.level"], config["logging.format"])
    open_node(config).close()  # refuse to start on a bad key or database, before listening
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(config, ready=lambda url: print(f"serving on {url}", flush=True)))
    return 0


def _read_network(path: Path):
    from protocol.network import parse_network_file

    try:
        return parse_network_file(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"cannot read network file {path}: {exc}") from exc


def cmd_network_create(args: argparse.Namespace) -> int:
    from protocol.keys import parse_verifier_key
    from protocol.network import AdmissionRule, Founder, NetworkFile, format_network_file

    founders = []
    for n, spec in enumerate(args.member, start=1):
        parts = spec.split(",", 2)
        if len(parts) != 3:
            raise CliError(f"--member {n}: expected NAME,VERIFIER_KEY,URL, got {spec[:80]!r}")
        name, key, url = (p.strip() for p in parts)
        founders.append(Founder(name=name, key=parse_verifier_key(key), url=url.rstrip("/")))
    network = NetworkFile(
        name=args.name,
        rule=AdmissionRule(min_vouches=args.quorum, share_percent=args.share),
        founders=tuple(founders),
        signatures=(),
    )
    text = format_network_file(network)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"wrote {args.out}: now each founder runs 'solidarity network sign {args.out}'")
    else:
        print(text, end="")
    return 0


def cmd_network_sign(args: argparse.Namespace) -> int:
    from protocol.network import format_network_file, network_hash, sign_network_file

    network = _read_network(args.file)
    node = _open(args, readonly=True)
    try:
        signed = sign_network_file(network, node.signer)
    finally:
        node.close()
    args.file.write_text(format_network_file(signed), encoding="utf-8")
    print(f"signed network {signed.name} ({network_hash(signed).hex()[:16]}...) as {node.signer.name}")
    return 0


def _install_network(config, network, verifier: str) -> None:
    from node.local import check_network_for_node
    from protocol.network import format_network_file, network_hash, verify_network_signatures

    check_network_for_node(network, config, verifier)
    signed_by = [f.name for f in verify_network_signatures(network)]
    config.network_path.write_text(format_network_file(network), encoding="utf-8")
    print(f"installed network {network.name}: hash {network_hash(network).hex()}")
    print(f"founders: {len(network.founders)}; signed by: {', '.join(signed_by) or 'nobody yet'}")


def cmd_network_join(args: argparse.Namespace) -> int:
    network = _read_network(args.file)
    node = _open(args, readonly=True)
    try:
        _install_network(node.config, network, str(node.signer.verifier))
    finally:
        node.close()
    return 0


def _with_federation(args: argparse.Namespace, fn):
    import asyncio

    import aiohttp

    from node.federation import Federation
    from node.local import load_network

    node = _open(args)
    try:
        network = load_network(node.config)
        if network is None:
            raise CliError("no network file installed: run 'solidarity network join FILE' first")
        config = node.config

        async def run():
            from node.peer_http import peer_session

            async with peer_session(config) as session:
                federation = Federation(node.store, network, own_url=config["node.public_url"], session=session,
                                        timeout=config["gossip.timeout_ms"] / 1000)
                try:
                    return await fn(federation)
                finally:
                    await federation.close()

        return asyncio.run(run())
    finally:
        node.close()


def cmd_sync(args: argparse.Namespace) -> int:
    async def sync(federation):
        outcomes = await federation.sync_all()
        for outcome in outcomes:
            print(f"{outcome.log_id[:16]}  {outcome.state:<13} size {outcome.size}  fetched {outcome.fetched}")
        failed = [p for p in federation.peers.values() if p.last_error]
        for peer in failed:
            print(f"peer {peer.url}: {peer.last_error}", file=sys.stderr)
        return 0 if len(failed) < len(federation.peers) or not federation.peers else 1

    return _with_federation(args, sync)


def cmd_peers(args: argparse.Namespace) -> int:
    import aiohttp

    async def peers(federation):
        urls = await federation._db(federation.peer_urls)  # noqa: SLF001 (same package)
        for url in urls:
            try:
                async with federation.session.get(url + "/healthz", timeout=aiohttp.ClientTimeout(total=5)) as r:
                    state = "answers" if r.status == 200 else f"answered {r.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                state = f"unreachable ({type(exc).__name__})"
            print(f"{url}  {state}")
        if not urls:
            print("no peers: the network file names no other members yet")
        return 0

    return _with_federation(args, peers)


def cmd_config_check(args: argparse.Namespace) -> int:
    from node.config import SETTINGS

    config = load_config(args.data)
    for setting in SETTINGS:
        source = "env" if setting.env in os.environ else "file/default"
        print(f"{setting.key} = {config[setting.key]!r}  ({source})")
    print("configuration is valid")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    import asyncio
    import shlex

    from node.demo import run_demo

    # Print follow-up commands the way this one was run (e.g. .venv/bin/solidarity).
    command = sys.argv[0] if Path(sys.argv[0]).name == "solidarity" else "solidarity"
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: every node was stopped cleanly
        return asyncio.run(run_demo(args.cities, root=args.dir, base_port=args.base_port,
                                    exit_after_converge=args.exit_after_converge, command=shlex.quote(command)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from node.logs import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(os.environ.get("SOLIDARITY_LOGGING_LEVEL", "warning" if args.command != "serve" else "info"),
                  os.environ.get("SOLIDARITY_LOGGING_FORMAT", "auto"))
    try:
        return args.func(args)
    except (SolidarityError, CliError) as exc:
        print(f"solidarity {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `solidarity log | head` closed the pipe: not an error of ours. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
