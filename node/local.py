"""Creating and opening this city's node: data folder, key, config, database.

A data folder holds ``config.toml``, ``key.pem`` (mode 0600) and the SQLite
database. ``init_node`` makes all three and entry 0 of the city's log (its
``city`` profile); ``open_node`` loads them back and refuses what would be
unsafe to run with (a key readable by other users, a key that is not the one
the log was made with, a database of a newer format).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import schemas
from node.authoring import Author, Event
from node.config import CONFIG_FILE, Config, build_config, write_config
from node.errors import AuthoringRefused, ConfigError, StorageError
from node.store import LogState, Store
from protocol.entry import log_id as compute_log_id
from protocol.keys import Signer, load_private_key, save_private_key, signer_from_seed
from protocol.merkle import EMPTY_ROOT
from protocol.network import NetworkFile, parse_network_file
from protocol.schema import SchemaRegistry

log = logging.getLogger(__name__)


def origin_from_url(url: str) -> str:
    """tlog-tiles: the origin is the log's prefix URL without scheme or trailing slash."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--url: expected an http:// or https:// URL, got {url[:60]!r}")
    return (parts.netloc + parts.path).rstrip("/")


def load_registry() -> SchemaRegistry:
    return SchemaRegistry(schemas.load_documents())


@dataclass(slots=True)
class LocalNode:
    """This city's node, opened for authoring or serving."""

    config: Config
    store: Store
    signer: Signer
    registry: SchemaRegistry

    def author(self, **kwargs) -> Author:
        kwargs.setdefault("guard", refuse_if_forked)
        return Author(self.store, self.signer, self.registry, network=self.config["node.network"], **kwargs)

    def close(self) -> None:
        self.store.close()


def refuse_if_forked(store: Store, state: LogState) -> None:
    """Refuse to author where appending could fork our own log.

    Evidence against our own city stops all authoring (appending would deepen the
    fork); so does a restore until our own log was fetched back from a peer.
    """
    if store.get_meta("catch_up_required") is not None:
        raise AuthoringRefused(
            "this node was restored from a backup and has not yet fetched its own log from a peer: "
            "authoring now could sign a second history. Run 'solidarity sync' (or start 'serve' and "
            "let it gossip) first; if no peer can be reached and you are sure none holds newer entries "
            "of this city, run 'solidarity resume-authoring --force'"
        )
    if state.log_id in store.evidence():
        raise AuthoringRefused(
            "evidence is held that this city's log was signed with two histories: someone else "
            "holds this city's key, or a copy of this node is running. Authoring is stopped; see "
            "'GET /v1/evidence' and docs/operating.md (key compromise)"
        )


def read_passphrase(path: Path | None) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes().rstrip(b"\r\n")
    except OSError as exc:
        raise ConfigError(f"cannot read passphrase file {path}: {exc.strerror}") from exc


def load_signer(config: Config) -> Signer:
    path = config.key_path
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ConfigError(f"key file {path} does not exist (setting node.key_file)") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"key file {path} can be read by other users (mode {stat.S_IMODE(mode):o}); "
            f"run: chmod 600 {path}"
        )
    return load_private_key(path.read_bytes(), config["node.origin"], read_passphrase(config.passphrase_path))


def open_node(config: Config, *, readonly: bool = False) -> LocalNode:
    signer = load_signer(config)
    store = Store(config.database_path, readonly=readonly)
    try:
        own = store.own_log()
        if own.origin != config["node.origin"]:
            raise ConfigError(
                f"setting node.origin is {config['node.origin']!r} but this node's log is "
                f"{own.origin!r}: the origin is fixed when the log is created; restore it in {CONFIG_FILE}"
            )
        if own.verifier != str(signer.verifier):
            raise ConfigError(
                f"key file {config.key_path} is not the key of this node's log "
                f"(log verifier key {own.verifier}); restore the right key file"
            )
    except BaseException:
        store.close()
        raise
    return LocalNode(config=config, store=store, signer=signer, registry=load_registry())


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def init_node(
    data_dir: Path,
    *,
    city: str,
    country: str,
    url: str,
    network: str,
    contact: str | None = None,
    languages: list[str] | None = None,
    passphrase: bytes | None = None,
    passphrase_file: str = "",
    listen: str | None = None,
    seed: bytes | None = None,
) -> tuple[LocalNode, dict]:
    """Create a node; returns it and the ``city`` profile written as entry 0."""
    data_dir = Path(data_dir)
    origin = origin_from_url(url)
    values = {
        "node.name": city,
        "node.origin": origin,
        "node.network": network,
        "node.public_url": url.rstrip("/"),
        "node.passphrase_file": passphrase_file,
    }
    if listen:
        values["http.listen"] = listen
    config = build_config(data_dir, values, env={})
    host = urlsplit(url).hostname or ""
    if contact is None and "." not in host:
        raise ConfigError(
            f"--contact is needed: no organisational e-mail can be derived from the host {host!r} "
            "of --url (give e.g. --contact migration@city.example)"
        )
    profile = {
        "name": city,
        "country": country.upper(),
        "urls": [url.rstrip("/")],
        "contact": contact or f"solidarity@{host}",
        "languages": languages or ["en"],
    }
    registry = load_registry()
    registry.validate("city", registry.latest("city"), profile)  # before anything is written

    for existing in (data_dir / CONFIG_FILE, config.key_path, config.database_path):
        if existing.exists():
            raise ConfigError(f"{existing} already exists: refusing to overwrite an existing node")
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    signer = signer_from_seed(origin, seed if seed is not None else os.urandom(32))
    created: list[Path] = []
    try:
        _write_private(config.key_path, save_private_key(signer, passphrase))
        created.append(config.key_path)
        store = Store.create(config.database_path)
        created.append(config.database_path)
        with store.write():
            store.add_log(
                log_id=compute_log_id(origin),
                origin=origin,
                verifier=str(signer.verifier),
                own=True,
                root=EMPTY_ROOT,
            )
        node = LocalNode(config=config, store=store, signer=signer, registry=registry)
        node.author().append([Event(type="city", body=profile)])
        write_config(data_dir, values)
    except BaseException:
        # Leave no half-made node behind: a retry of init must be possible.
        with contextlib.suppress(Exception):
            store.close()  # type: ignore[possibly-undefined]
        for path in created:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(str(path) + suffix).unlink()
        raise
    return node, profile


def load_network(config: Config) -> NetworkFile | None:
    """The installed network file, or None for a node that has not joined one yet."""
    path = config.network_path
    if not path.exists():
        return None
    try:
        network = parse_network_file(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read network file {path}: {exc}") from exc
    if network.name != config["node.network"]:
        raise ConfigError(
            f"network file {path} is for network {network.name!r} but this node is in "
            f"{config['node.network']!r} (setting node.network)"
        )
    return network


def check_network_for_node(network: NetworkFile, config: Config, verifier: str) -> None:
    """Refuse a network file that does not fit this node, saying why."""
    if network.name != config["node.network"]:
        raise ConfigError(
            f"the network file is for network {network.name!r}, this node was created for "
            f"{config['node.network']!r}"
        )
    for founder in network.founders:
        if founder.key.name == config["node.origin"] and str(founder.key) != verifier:
            raise ConfigError(
                f"the network file lists origin {founder.key.name!r} with key {founder.key}, "
                f"but this node's key is {verifier}: wrong node, or the file was edited"
            )


def require_node_dir(data_dir: Path) -> None:
    if not (data_dir / CONFIG_FILE).exists():
        raise StorageError(
            f"{data_dir} is not a node's data folder (no {CONFIG_FILE}): run 'solidarity init' first"
        )
