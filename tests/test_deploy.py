"""deploy/ works as shipped: what can be checked without Docker or a booted systemd.

- the systemd unit has the sandbox it promises, and ``systemd-analyze`` accepts it;
- every ``solidarity <command>`` named anywhere in deploy/ is a real command, and the full command
  lines in INSTALL.md parse with the real CLI parser;
- compose.yaml has the shape the demo needs (PyYAML is used when installed, never required: a
  small parser for the YAML subset the file uses reads it otherwise);
- the Containerfile copies what exists and runs what the CLI accepts;
- init-network.sh really makes three nodes that pass ``solidarity verify`` and share one signed
  network file, and those nodes really gossip with each other.

The reverse proxy is tested for real in tests/deploy/test_nginx.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from node.cli import build_parser
from protocol.network import network_hash, parse_network_file, verify_network_signatures

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "solidarity-node.service"
WRAPPER = DEPLOY / "systemd" / "solidarity"
INSTALL = DEPLOY / "INSTALL.md"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
COMPOSE = DEPLOY / "container" / "compose.yaml"
INIT_SCRIPT = DEPLOY / "container" / "init-network.sh"
NGINX_SITE = DEPLOY / "nginx" / "solidarity.conf"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "SOLIDARITY_LOGGING_LEVEL": "warning"}


# -- the CLI's commands ------------------------------------------------------------------------


def _cli_commands() -> dict[str, set[str]]:
    """Top-level commands, each with its subcommands (empty for a plain command)."""
    parser = build_parser()
    commands = {}
    for name, sub in parser._subparsers._group_actions[0].choices.items():  # noqa: SLF001
        inner = sub._subparsers._group_actions[0].choices if sub._subparsers else {}  # noqa: SLF001
        commands[name] = set(inner)
    return commands


def _parse_cli(argv: list[str]) -> str | None:
    """None if the real parser accepts argv, else what it said."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            build_parser().parse_args(argv)
    except SystemExit as exc:
        return stderr.getvalue().strip() or f"exit {exc.code}"
    return None


#: "solidarity <word> [<word>]" where "solidarity" is the program: at the start of a command, or
#: after a path ending in /solidarity, an opening quote or bracket, "exec", "$(", "| " ... but not
#: the user name in "-u solidarity", "--user solidarity", "User=solidarity" or "chown solidarity".
_INVOCATION = re.compile(
    r"(?:^|(?<=[\s`\"'(\[;|&/]))solidarity[ \t]+([a-z][a-z-]*)(?:[ \t]+([a-z][a-z-]*))?", re.MULTILINE
)
_NOT_A_PROGRAM = re.compile(r"(?:-u|--user|-o|-g|chown|useradd|groupadd|runuser -u|Group=|User=)\s*$")


def _invocations(text: str) -> list[tuple[str, str | None, str]]:
    found = []
    for m in _INVOCATION.finditer(text):
        before = text[max(0, m.start() - 20) : m.start()]
        if _NOT_A_PROGRAM.search(before):
            continue
        # "/var/lib/solidarity serve"? only "/bin/solidarity" (or bare "solidarity") is the program.
        if before.endswith("/") and not before.endswith("bin/"):
            continue
        line = text[text.rfind("\n", 0, m.start()) + 1 : text.find("\n", m.end())]
        found.append((m.group(1), m.group(2), line.strip()))
    return found


def _deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def test_every_solidarity_command_named_in_deploy_is_real():
    commands = _cli_commands()
    seen = 0
    bad = []
    for path in _deploy_files():
        for cmd, sub, line in _invocations(path.read_text(encoding="utf-8")):
            seen += 1
            if cmd not in commands:
                bad.append(f"{path.relative_to(ROOT)}: 'solidarity {cmd}' is no command: {line}")
            elif commands[cmd] and sub not in commands[cmd]:
                bad.append(f"{path.relative_to(ROOT)}: 'solidarity {cmd} {sub}' is no command: {line}")
    assert not bad, "\n".join(bad)
    assert seen > 20  # the pattern still finds the invocations (INSTALL.md alone has dozens)


def test_the_invocation_pattern_tells_the_program_from_the_user():
    text = "runuser -u solidarity -- /opt/solidarity/bin/solidarity init --data /var/lib/solidarity serve\n"
    assert [(c, s) for c, s, _ in _invocations(text)] == [("init", None)]
    assert _invocations("chown solidarity /tmp/x; useradd solidarity foo") == []
    assert [c for c, _, _ in _invocations("`solidarity network join x`")] == ["network"]


def _shell_commands(markdown: str) -> list[str]:
    """Command lines inside ```sh blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", markdown, re.DOTALL):
        block = block.replace("\\\n", " ")
        commands += [line.strip() for line in block.splitlines() if line.strip()]
    return commands


def test_install_guide_command_lines_parse_with_the_real_cli():
    checked = 0
    problems = []
    for line in _shell_commands(INSTALL.read_text(encoding="utf-8")):
        if not line.startswith("solidarity "):
            continue
        words = shlex.split(re.sub(r"\$\([^)]*\)", "X", line), comments=True)  # $(date ...) -> X
        checked += 1
        said = _parse_cli(words[1:])
        if said is not None:
            problems.append(f"{line}\n    -> {said}")
    assert not problems, "INSTALL.md commands the CLI refuses:\n" + "\n".join(problems)
    assert checked >= 6  # init (twice), key show, config check, network join, verify, ...


# -- systemd -----------------------------------------------------------------------------------


def _unit(text: str) -> dict[str, dict[str, list[str]]]:
    """systemd unit: section -> key -> values (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        assert current is not None, f"key outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not Key=Value: {raw!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


REQUIRED_SERVICE = {
    "StateDirectory": "solidarity",
    "ExecStart": "/opt/solidarity/bin/solidarity serve --data /var/lib/solidarity",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "CapabilityBoundingSet": "",
    "UMask": "0077",
    "Restart": "on-failure",
}


def test_systemd_unit_has_the_promised_sandbox():
    text = UNIT.read_text(encoding="utf-8")
    unit = _unit(text)
    service = unit["Service"]
    for key, value in REQUIRED_SERVICE.items():
        assert service.get(key) == [value], f"{key}: expected {value!r}, got {service.get(key)}"
    assert service.get("DynamicUser") == ["yes"] or service.get("User") == ["solidarity"]
    assert "@system-service" in service["SystemCallFilter"]
    assert service.get("RestartSec"), "RestartSec missing"
    env = " ".join(service.get("Environment", []))
    assert "SOLIDARITY_LOGGING_FORMAT=json" in env.split()
    # The credential is optional: shipped commented out, with the exact line to enable.
    assert re.search(r"^#\s*LoadCredential=passphrase:/etc/solidarity/passphrase$", text, re.MULTILINE)
    assert "LoadCredential" not in service
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    # ExecStart is a command the CLI accepts.
    argv = shlex.split(service["ExecStart"][0])
    assert argv[0].endswith("/solidarity")
    assert _parse_cli(argv[1:]) is None


def _unit_with_existing_binary(tmp_path: Path) -> Path:
    """A copy whose ExecStart names an executable that exists here (verify checks that)."""
    script = Path(sys.executable).with_name("solidarity")
    binary = script if script.exists() else Path(sys.executable)
    text = UNIT.read_text(encoding="utf-8").replace("/opt/solidarity/bin/solidarity", str(binary))
    copy = tmp_path / UNIT.name
    copy.write_text(text, encoding="utf-8")
    return copy


def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    unit = _unit_with_existing_binary(tmp_path)
    done = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    out = done.stdout + done.stderr
    if done.returncode != 0 and "Failed to " in out and UNIT.name not in out:
        pytest.skip(f"systemd-analyze cannot run here: {out.strip()[:300]}")
    assert done.returncode == 0, out
    assert "Unknown" not in out and "ignoring" not in out, out


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    unit = _unit_with_existing_binary(tmp_path)
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--no-pager", str(unit)],
        capture_output=True, text=True, timeout=60,
    )
    out = done.stdout + done.stderr
    m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", out)
    if m is None:
        pytest.skip(f"this systemd-analyze cannot rate unit files offline: {out.strip()[:300]}")
    assert float(m.group(1)) <= 2.0, out


def test_shell_scripts_are_valid():
    for script in (INIT_SCRIPT, WRAPPER):
        assert os.access(script, os.X_OK), f"{script.relative_to(ROOT)} is not executable"
        shell = "bash" if script.read_text().startswith("#!/usr/bin/env bash") else "sh"
        done = subprocess.run([shell, "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        if shutil.which("shellcheck"):
            done = subprocess.run(["shellcheck", "-s", shell, str(script)], capture_output=True, text=True)
            assert done.returncode == 0, done.stdout


# -- compose.yaml ------------------------------------------------------------------------------


def _scalar(text: str):
    text = text.strip()
    if not text or text == "~" or text == "null":
        return None
    if text[0] in "\"'":
        assert text[-1] == text[0], f"unterminated quote: {text!r}"
        inner = text[1:-1]
        return json.loads(text) if text[0] == '"' else inner.replace("''", "'")
    if text.startswith("["):
        assert text.endswith("]"), f"flow sequence on one line only: {text!r}"
        inner = text[1:-1].strip()
        return [_scalar(part) for part in _split_flow(inner)] if inner else []
    if text in ("true", "false"):
        return text == "true"
    if re.fullmatch(r"-?[0-9]+", text):
        return int(text)
    assert not text.startswith(("{", "&", "*", "!", "|", ">")), f"outside the supported YAML subset: {text!r}"
    return text


def _split_flow(text: str) -> list[str]:
    parts, current, quote = [], "", None
    for ch in text:
        if quote:
            current += ch
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
            current += ch
        elif ch == ",":
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p.strip() for p in parts]


def _strip_comment(line: str) -> str:
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "\"'":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1] in " \t"):
            return line[:i].rstrip()
    return line.rstrip()


def mini_yaml(text: str):
    """The block-style YAML subset compose.yaml uses: mappings, sequences, plain/quoted scalars and
    one-line flow sequences. Anything else fails loudly rather than being misread."""
    lines = []
    for n, raw in enumerate(text.splitlines(), start=1):
        assert "\t" not in raw, f"line {n}: tab"
        line = _strip_comment(raw)
        if line.strip():
            lines.append((n, len(line) - len(line.lstrip(" ")), line.strip()))

    def block(i: int, indent: int):
        if lines[i][2].startswith("- ") or lines[i][2] == "-":
            items = []
            while i < len(lines) and lines[i][1] == indent and lines[i][2].startswith("-"):
                n, _, content = lines[i]
                rest = content[1:].strip()
                assert rest and not re.match(r"[A-Za-z0-9_.-]+:(\s|$)", rest), f"line {n}: only scalar items supported"
                items.append(_scalar(rest))
                i += 1
            return items, i
        mapping = {}
        while i < len(lines) and lines[i][1] == indent:
            n, _, content = lines[i]
            m = re.fullmatch(r"([A-Za-z0-9_.-]+|\"[^\"]+\"):(?:\s+(.*))?", content)
            assert m, f"line {n}: expected 'key: value', got {content!r}"
            key = m.group(1).strip('"')
            assert key not in mapping, f"line {n}: duplicate key {key!r}"
            i += 1
            if m.group(2) is not None:
                mapping[key] = _scalar(m.group(2))
            elif i < len(lines) and lines[i][1] > indent:
                mapping[key], i = block(i, lines[i][1])
            elif i < len(lines) and lines[i][1] == indent and lines[i][2].startswith("- "):
                mapping[key], i = block(i, indent)  # a sequence at the key's own indent
            else:
                mapping[key] = None
        assert i >= len(lines) or lines[i][1] < indent, f"line {lines[i][0]}: bad indentation"
        return mapping, i

    value, end = block(0, lines[0][1])
    assert end == len(lines), f"line {lines[end][0]}: not parsed"
    return value


def _compose() -> dict:
    text = COMPOSE.read_text(encoding="utf-8")
    document = mini_yaml(text)
    try:
        import yaml
    except ImportError:
        return document
    assert yaml.safe_load(text) == document, "the subset parser misread compose.yaml"
    return document


def test_mini_yaml_reads_the_subset_and_refuses_the_rest():
    doc = mini_yaml('a:\n  b: "x # y"  # comment\n  c: [1, "two", three]\n  d:\n    - e\n    - "f"\n  g:\nh: 8701\n')
    assert doc == {"a": {"b": "x # y", "c": [1, "two", "three"], "d": ["e", "f"], "g": None}, "h": 8701}
    with pytest.raises(AssertionError):
        mini_yaml("a: &anchor\n  b: 1\n")
    with pytest.raises(AssertionError):
        mini_yaml("a:\n  b: 1\n c: 2\n")


def _containerfile() -> dict[str, list[str]]:
    instructions: dict[str, list[str]] = {}
    text = CONTAINERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        instructions.setdefault(word.upper(), []).append(rest.strip())
    return instructions


def test_compose_starts_three_cities_after_the_init_service():
    compose = _compose()
    services = compose["services"]
    cmd = json.loads(_containerfile()["CMD"][-1])
    init = services["init"]
    assert init["entrypoint"] == ["/usr/local/bin/init-network.sh"]
    assert init["build"]["dockerfile"] == "deploy/container/Containerfile"
    assert (COMPOSE.parent / init["build"]["context"] / init["build"]["dockerfile"]).resolve() == CONTAINERFILE
    env = init["environment"]
    base = env["SOLIDARITY_INIT_BASE"]
    cities = [spec.split(":")[0].lower() for spec in env["SOLIDARITY_INIT_CITIES"].split()]
    assert cities == ["athens", "berlin", "barcelona"]
    assert sorted(init["volumes"]) == sorted(f"{c}:{base}/{c}" for c in cities)
    ports = set()
    for city in cities:
        service = services[city]
        assert service["image"] == init["image"]
        assert service["depends_on"] == {"init": {"condition": "service_completed_successfully"}}
        assert service["volumes"] == [f"{city}:/data"]
        assert service["command"] == cmd  # the image's own CMD, spelled out
        assert _parse_cli(service["command"]) is None
        (port,) = service["ports"]
        assert port.startswith("127.0.0.1:") and port.endswith(":8701"), port
        ports.add(port)
        assert service["cap_drop"] == ["ALL"] and service["read_only"] is True
    assert len(ports) == 3
    assert set(compose["volumes"]) == set(cities)
    # The nodes reach each other by service name: the URLs init-network.sh gives them.
    assert env["SOLIDARITY_INIT_SCHEME"] == "http" and env["SOLIDARITY_INIT_PORT"] == "8701"


def test_containerfile_builds_a_non_root_image_of_the_package():
    c = _containerfile()
    assert c["FROM"] == ["python:3.11-slim"]
    user = c["USER"][-1].split(":")[0]
    assert user not in ("root", "0"), user
    assert c["VOLUME"] == ["/data"] and c["EXPOSE"] == ["8701"]
    assert json.loads(c["ENTRYPOINT"][-1]) == ["solidarity"]
    cmd = json.loads(c["CMD"][-1])
    assert cmd == ["serve", "--data", "/data", "--listen", "0.0.0.0:8701"]
    assert _parse_cli(cmd) is None
    for copy in c["COPY"]:
        words = [w for w in copy.split() if not w.startswith("--")]
        for source in words[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
    assert any("pip install ." in run for run in c["RUN"])
    ignored = (CONTAINERFILE.parent / "Containerfile.dockerignore").read_text().split()
    for needed in ("node", "protocol", "schemas", "pyproject.toml", "README.md", "deploy"):
        assert needed not in ignored


# -- init-network.sh, for real -----------------------------------------------------------------


def _run_init(base: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {
        **ENV,
        "SOLIDARITY": f"{shlex.quote(sys.executable)} -m node.cli",
        "SOLIDARITY_INIT_BASE": str(base),
        "SOLIDARITY_INIT_SCHEME": "http",
        **extra,
    }
    env.pop("SOLIDARITY_INIT_USER", None)
    return subprocess.run(["bash", str(INIT_SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "node.cli", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=120)


def test_init_network_script_makes_three_verified_nodes_under_one_signed_network_file(tmp_path):
    base = tmp_path / "nodes"
    done = _run_init(base)
    assert done.returncode == 0, done.stderr
    shared = (base / "network.toml").read_text(encoding="utf-8")
    network = parse_network_file(shared)
    assert network.name == "solidarity-demo"
    assert [f.name for f in network.founders] == ["Athens", "Berlin", "Barcelona"]
    assert [f.url for f in network.founders] == ["http://athens:8701", "http://berlin:8701", "http://barcelona:8701"]
    assert {f.name for f in verify_network_signatures(network)} == {"Athens", "Berlin", "Barcelona"}
    for founder in network.founders:
        data = base / founder.name.lower()
        assert (data / "network.toml").read_text(encoding="utf-8") == shared
        verified = _cli("verify", "--data", str(data))
        assert verified.returncode == 0, verified.stderr
        assert "verified 1 logs, 1 entries" in verified.stdout
        key = _cli("key", "show", "--data", str(data))
        assert key.stdout.strip() == str(founder.key)
        assert (data / "key.pem").stat().st_mode & 0o077 == 0

    # Idempotent: a second run (a restart of the compose project) only checks.
    before = {p: p.read_bytes() for p in base.rglob("*.toml")}
    again = _run_init(base)
    assert again.returncode == 0, again.stderr
    assert "checking them only" in again.stderr
    assert {p: p.read_bytes() for p in base.rglob("*.toml")} == before
    assert network_hash(parse_network_file((base / "berlin" / "network.toml").read_text())) == network_hash(network)

    # Half-made folders are refused, not silently completed.
    (base / "barcelona" / "network.toml").unlink()
    half = _run_init(base)
    assert half.returncode == 1
    assert "half-way" in half.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 (loopback test URL)
        return json.load(r)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_nodes_made_by_init_network_script_gossip_with_each_other(tmp_path):
    """The compose topology minus Docker: the script's nodes, served on loopback, converge."""
    base = tmp_path / "nodes"
    ports = {city: _free_port() for city in ("athens", "berlin", "barcelona")}
    urls = {f"SOLIDARITY_INIT_URL_{c}": f"http://127.0.0.1:{p}" for c, p in ports.items()}
    done = _run_init(base, **urls)
    assert done.returncode == 0, done.stderr
    serve_env = {**ENV, "SOLIDARITY_GOSSIP_INTERVAL_MS": "200", "SOLIDARITY_GOSSIP_TIMEOUT_MS": "2000"}
    procs = []
    try:
        for city, port in ports.items():
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "node.cli", "serve", "--data", str(base / city), "--listen", f"127.0.0.1:{port}"],
                cwd=ROOT, env=serve_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            ))
        for proc in procs:
            line = proc.stdout.readline()
            assert line.startswith("serving on "), proc.stderr.read() if proc.poll() is not None else line
        pledged = _cli("pledge", "--data", str(base / "athens"), "--kind", "relocation", "--places", "40",
                       "--from", "2026-01-01", "--until", "2026-06-30")
        assert pledged.returncode == 0, pledged.stderr
        deadline = time.monotonic() + 60
        while True:
            views = {c: {x["origin"]: x["size"] for x in _get_json(f"http://127.0.0.1:{p}/v1/logs")["logs"]}
                     for c, p in ports.items()}
            if all(v == views["athens"] for v in views.values()) and views["athens"].get(f"127.0.0.1:{ports['athens']}") == 2:
                break
            assert time.monotonic() < deadline, f"no convergence: {views}"
            time.sleep(0.2)
        assert len(views["athens"]) == 3  # every node holds all three founders' logs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            with contextlib.suppress(Exception):
                proc.stdout.close()
                proc.stderr.close()
    for city in ports:
        verified = _cli("verify", "--data", str(base / city))
        assert verified.returncode == 0, verified.stderr
        assert "verified 3 logs, 4 entries" in verified.stdout


def test_nginx_site_limits_bodies_to_the_nodes_max_request_bytes():
    from node.config import SETTINGS

    default = next(s.default for s in SETTINGS if s.key == "http.max_request_bytes")
    m = re.search(r"^\s*client_max_body_size\s+(\d+)k;", NGINX_SITE.read_text(), re.MULTILINE)
    assert m and int(m.group(1)) * 1024 == default
