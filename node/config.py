"""The node's settings: one TOML file per node, every setting documented here.

``solidarity init`` writes ``config.toml`` into the data folder. Every setting
has a default, can be overridden by an environment variable named
``SOLIDARITY_<SECTION>_<NAME>`` (for example ``SOLIDARITY_HTTP_LISTEN``), and is
validated with an error that names the setting and what is allowed. Example::

    [node]
    name = "Athens"
    origin = "athens.example.org/solidarity"
    network = "solidarity-cities"
    public_url = "https://athens.example.org/solidarity"

    [http]
    listen = "127.0.0.1:8701"

The origin is fixed when the log is created: it names the log forever, so
changing it in the file is refused at start-up (it no longer matches the log).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.errors import ConfigError

CONFIG_FILE = "config.toml"
DEFAULT_DATA_DIR = "./solidarity-data"
DEFAULT_LISTEN = "127.0.0.1:8701"
ENV_PREFIX = "SOLIDARITY_"

_NETWORK_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")


def _string(max_len: int = 1024, *, allow_empty: bool = True) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise ConfigError(f"setting {name}: expected a string, got {type(value).__name__}")
        if not allow_empty and not value:
            raise ConfigError(f"setting {name}: must not be empty")
        if len(value) > max_len:
            raise ConfigError(f"setting {name}: at most {max_len} characters, got {len(value)}")
        return value

    return check


def _choice(*allowed: str) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if value not in allowed:
            raise ConfigError(
                f"setting {name}: must be one of {', '.join(allowed)}; got {str(value)[:40]!r}"
            )
        return value

    return check


def _integer(low: int, high: int) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise ConfigError(f"setting {name}: expected an integer, got {value[:40]!r}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"setting {name}: expected an integer, got {type(value).__name__}")
        if not low <= value <= high:
            raise ConfigError(f"setting {name}: must be from {low} to {high}, got {value}")
        return value

    return check


def _listen(name: str, value: Any) -> str:
    value = _string(300, allow_empty=False)(name, value)
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"setting {name}: expected HOST:PORT such as {DEFAULT_LISTEN}, got {value[:40]!r}")
    return value


def _url(name: str, value: Any) -> str:
    value = _string(2048, allow_empty=False)(name, value)
    if not re.match(r"^https?://[^\s/]+", value):
        raise ConfigError(f"setting {name}: expected an http:// or https:// URL, got {value[:60]!r}")
    return value


def _network(name: str, value: Any) -> str:
    value = _string(64, allow_empty=False)(name, value)
    if not _NETWORK_RE.match(value):
        raise ConfigError(
            f"setting {name}: lower-case letters, digits, '.' and '-' (at most 64), got {value[:40]!r}"
        )
    return value


@dataclass(frozen=True, slots=True)
class Setting:
    section: str
    name: str
    default: Any
    check: Callable[[str, Any], Any]
    doc: str

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def env(self) -> str:
        return f"{ENV_PREFIX}{self.section.upper()}_{self.name.upper()}"


#: Every setting the node reads. A test fails if one is missing from docs/operating.md.
SETTINGS: tuple[Setting, ...] = (
    Setting("node", "name", "", _string(200, allow_empty=False), "The city's name as shown to people."),
    Setting(
        "node",
        "origin",
        "",
        _string(255, allow_empty=False),
        "The log's origin (its permanent name, fixed at init; also the signing key's name).",
    ),
    Setting("node", "network", "", _network, "The network this node belongs to."),
    Setting("node", "public_url", "", _url, "Where other nodes and the public reach this node."),
    Setting("node", "key_file", "key.pem", _string(), "The city's Ed25519 private key (PEM), relative to the data folder."),
    Setting(
        "node",
        "passphrase_file",
        "",
        _string(),
        "File holding the key's passphrase; empty for an unencrypted key. Under systemd, use "
        "LoadCredential= and leave this empty: $CREDENTIALS_DIRECTORY/passphrase is read.",
    ),
    Setting("node", "database", "solidarity.db", _string(allow_empty=False), "The SQLite database, relative to the data folder."),
    Setting(
        "node",
        "network_file",
        "network.toml",
        _string(allow_empty=False),
        "The installed network file (the network's trust root), relative to the data folder.",
    ),
    Setting("http", "listen", DEFAULT_LISTEN, _listen, "HOST:PORT the HTTP service listens on."),
    Setting(
        "http",
        "max_request_bytes",
        65536,
        _integer(1024, 16 * 1024 * 1024),
        "Largest request body the node accepts.",
    ),
    Setting("gossip", "interval_ms", 2000, _integer(50, 600_000), "Milliseconds between gossip rounds."),
    Setting("gossip", "fanout", 2, _integer(1, 32), "Peers contacted each gossip round."),
    Setting(
        "gossip",
        "timeout_ms",
        20000,
        _integer(100, 600_000),
        "Longest wait for one answer from a peer; slower peers are backed off.",
    ),
    Setting(
        "peers",
        "proxy",
        "",
        _string(2048),
        "Outbound HTTP proxy for connections to peers (http://host:port); empty: none "
        "(the HTTPS_PROXY environment variable is not used unless set here).",
    ),
    Setting(
        "peers",
        "ca_file",
        "",
        _string(),
        "PEM bundle of certificate authorities trusted for TLS to peers, in place of the system's; "
        "TLS to peers is always verified.",
    ),
    Setting("logging", "level", "info", _choice("debug", "info", "warning", "error"), "Least severe log level written."),
    Setting(
        "logging",
        "format",
        "auto",
        _choice("auto", "json", "text"),
        "Log line format; auto writes JSON lines when standard error is not a terminal.",
    ),
)

_BY_KEY = {s.key: s for s in SETTINGS}


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """A validated node configuration; paths are absolute."""

    data_dir: Path
    values: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    @property
    def database_path(self) -> Path:
        return self.data_dir / self.values["node.database"]

    @property
    def key_path(self) -> Path:
        return self.data_dir / self.values["node.key_file"]

    @property
    def network_path(self) -> Path:
        return self.data_dir / self.values["node.network_file"]

    @property
    def ca_path(self) -> Path | None:
        value = self.values["peers.ca_file"]
        return self.data_dir / value if value else None

    @property
    def passphrase_path(self) -> Path | None:
        value = self.values["node.passphrase_file"]
        if value:
            return self.data_dir / value
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if creds and (Path(creds) / "passphrase").exists():
            return Path(creds) / "passphrase"
        return None

    @property
    def listen(self) -> tuple[str, int]:
        host, _, port = self.values["http.listen"].rpartition(":")
        return host.strip("[]"), int(port)


def build_config(
    data_dir: Path | str, file_values: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> Config:
    """Defaults, then the file, then the environment; every value validated."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        value = file_values.get(setting.key, setting.default)
        if setting.env in env:
            value = env[setting.env]
        values[setting.key] = setting.check(setting.key, value)
    return Config(data_dir=Path(data_dir).resolve(), values=values)


def flatten(document: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """TOML tables to ``section.name`` keys, refusing settings nobody reads (likely typos)."""
    flat: dict[str, Any] = {}
    for section, table in document.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: top-level key {section!r} must be a [section]")
        for name, value in table.items():
            key = f"{section}.{name}"
            if key not in _BY_KEY:
                known = ", ".join(sorted(_BY_KEY))
                raise ConfigError(f"{source}: unknown setting {key!r}; known settings: {known}")
            flat[key] = value
    return flat


def load_config(data_dir: Path | str, env: Mapping[str, str] | None = None) -> Config:
    data_dir = Path(data_dir)
    path = data_dir / CONFIG_FILE
    if not path.exists():
        raise ConfigError(
            f"no {CONFIG_FILE} in {data_dir}: create a node with 'solidarity init', "
            "or pass --data with the node's data folder"
        )
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    return build_config(data_dir, flatten(document, source=str(path)), env)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(str(value))


def render_config(values: Mapping[str, Any]) -> str:
    """The documented TOML file ``init`` writes: every setting with its doc and env name."""
    lines = [
        "# solidarity-node configuration. Every setting can be overridden by the",
        "# environment variable named beside it. See docs/operating.md.",
    ]
    section = None
    for setting in SETTINGS:
        if setting.section != section:
            section = setting.section
            lines += ["", f"[{section}]"]
        lines.append(f"# {setting.doc} (env {setting.env})")
        value = values.get(setting.key, setting.default)
        lines.append(f"{setting.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def write_config(data_dir: Path, values: Mapping[str, Any]) -> Path:
    build_config(data_dir, values, env={})  # validate before writing anything
    path = data_dir / CONFIG_FILE
    path.write_text(render_config(values), encoding="utf-8")
    return path
