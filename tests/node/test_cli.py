"""The solidarity command line, run as a user would (in-process through main())."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from node.cli import EVENT_COMMANDS, build_parser, main


@pytest.fixture
def data(tmp_path):
    return tmp_path / "athens"


@pytest.fixture
def node_dir(data, capsys):
    code = main([
        "init", "--data", str(data), "--city", "Athens", "--country", "gr",
        "--url", "https://solidarity.athens.example/", "--network", "test-net", "--languages", "el,en",
    ])
    assert code == 0
    capsys.readouterr()
    return data


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_init_prints_the_verifier_key(data, capsys):
    code, out, err = run(capsys, "init", "--data", str(data), "--city", "Athens", "--country", "GR",
                         "--url", "https://solidarity.athens.example", "--network", "test-net")
    assert code == 0, err
    assert "solidarity.athens.example+" in out
    assert "contact=solidarity@solidarity.athens.example" in out
    assert stat.S_IMODE(os.stat(data / "key.pem").st_mode) == 0o600
    code, out, err = run(capsys, "key", "show", "--data", str(data))
    assert out.strip().startswith("solidarity.athens.example+")


def test_init_refuses_an_existing_node(node_dir, capsys):
    code, out, err = run(capsys, "init", "--data", str(node_dir), "--city", "Athens", "--country", "GR",
                         "--url", "https://solidarity.athens.example", "--network", "test-net")
    assert code == 1 and "refusing to overwrite" in err and "Traceback" not in err


def test_pledge_prints_the_entry_id_and_log_shows_it(node_dir, capsys):
    code, out, err = run(capsys, "pledge", "--data", str(node_dir), "--kind", "relocation", "--places", "50",
                         "--from", "2026-01-01", "--until", "2026-06-30")
    assert code == 0, err
    entry_id = out.strip()
    assert len(entry_id) == 64
    code, out, _ = run(capsys, "log", "--data", str(node_dir), "--json")
    lines = [json.loads(x) for x in out.splitlines()]
    assert [x["type"] for x in lines] == ["city", "pledge"]
    assert lines[1]["id"] == entry_id and lines[1]["body"]["places"] == 50


def test_invalid_field_is_named_and_nothing_written(node_dir, capsys):
    code, out, err = run(capsys, "pledge", "--data", str(node_dir), "--kind", "relokation", "--places", "50",
                         "--from", "2026-01-01", "--until", "2026-06-30")
    assert code == 1 and "kind" in err and "relocation" in err and "Traceback" not in err
    code, out, err = run(capsys, "pledge", "--data", str(node_dir), "--kind", "relocation", "--places", "many",
                         "--from", "2026-01-01", "--until", "2026-06-30")
    assert code == 1 and "places" in err
    code, out, _ = run(capsys, "log", "--data", str(node_dir), "--json")
    assert len(out.splitlines()) == 1


def test_dry_run_shows_the_entry_and_writes_nothing(node_dir, capsys):
    code, out, err = run(capsys, "offer", "--data", str(node_dir), "--category", "staff", "--quantity", "3",
                         "--unit", "person-months", "--from", "2026-02-01", "--until", "2026-03-01",
                         "--description", "Three caseworkers.", "--dry-run")
    assert code == 0, err
    preview = json.loads(out)
    assert preview["dry_run"] and preview["seq"] == 1 and preview["body"]["quantity"] == 3
    code, out, _ = run(capsys, "log", "--data", str(node_dir), "--json")
    assert len(out.splitlines()) == 1


def test_json_output_of_an_authoring_command(node_dir, capsys):
    code, out, err = run(capsys, "statement", "--data", str(node_dir), "--title", "Direct funding",
                         "--text", "Cities call for direct EU funding of reception.", "--json")
    assert code == 0, err
    record = json.loads(out)
    assert record["type"] == "statement" and record["seq"] == 1 and len(record["id"]) == 64


def test_profile_updates_only_the_given_fields(node_dir, capsys):
    code, out, err = run(capsys, "profile", "--data", str(node_dir), "--contact", "migration@athens.example", "--json")
    assert code == 0, err
    body = json.loads(out)["body"]
    assert body["contact"] == "migration@athens.example"
    assert body["name"] == "Athens" and body["languages"] == ["el", "en"]


def test_import_appends_a_good_file_under_one_checkpoint(node_dir, tmp_path, capsys):
    lines = [
        {"type": "pledge", "body": {"kind": "resettlement", "places": n, "from": "2026-01-01", "until": "2026-12-31"}}
        for n in range(1, 6)
    ]
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    code, out, err = run(capsys, "import", "--data", str(node_dir), str(path))
    assert code == 0, err
    assert "imported 5 events: entries 1 to 5" in out
    code, out, err = run(capsys, "verify", "--data", str(node_dir))
    assert code == 0, err


def test_import_rejects_the_whole_file_for_one_bad_line(node_dir, tmp_path, capsys):
    good = {"type": "pledge", "body": {"kind": "other", "places": 1, "from": "2026-01-01", "until": "2026-12-31"}}
    bad = {"type": "pledge", "body": {"kind": "other", "places": -1, "from": "2026-01-01", "until": "2026-12-31"}}
    path = tmp_path / "history.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in [good, good, bad, good]) + "\n")
    code, out, err = run(capsys, "import", "--data", str(node_dir), str(path))
    assert code == 1 and "line 3" in err and "places" in err and "nothing was imported" in err
    path.write_text(json.dumps(good) + "\n{not json\n")
    code, out, err = run(capsys, "import", "--data", str(node_dir), str(path))
    assert code == 1 and "line 2" in err
    code, out, _ = run(capsys, "log", "--data", str(node_dir), "--json")
    assert len(out.splitlines()) == 1


def test_verify_passes_on_a_fresh_node(node_dir, capsys):
    code, out, err = run(capsys, "verify", "--data", str(node_dir))
    assert code == 0, err
    assert "verified 1 logs, 1 entries" in out


def test_missing_node_is_a_clear_error(tmp_path, capsys):
    code, out, err = run(capsys, "log", "--data", str(tmp_path / "nowhere"))
    assert code == 1 and "solidarity init" in err and "Traceback" not in err


def test_config_check_names_a_bad_setting(node_dir, capsys, monkeypatch):
    code, out, err = run(capsys, "config", "check", "--data", str(node_dir))
    assert code == 0 and "configuration is valid" in out
    monkeypatch.setenv("SOLIDARITY_HTTP_LISTEN", "nowhere")
    code, out, err = run(capsys, "config", "check", "--data", str(node_dir))
    assert code == 1 and "http.listen" in err


def test_every_command_has_help():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 (argparse has no public API)
    assert set(EVENT_COMMANDS) <= set(commands)
    for name, sub in commands.items():
        assert sub.format_help().strip(), name
        assert sub.description or sub.format_usage(), name


def test_help_runs_as_a_program():
    result = subprocess.run([sys.executable, "-m", "node.cli", "pledge", "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0 and "--places" in result.stdout and "--dry-run" in result.stdout


def test_log_piped_into_head_ends_quietly(node_dir):
    lines = [json.dumps({"type": "statement", "body": {"title": f"Statement {n}", "text": "x" * 500}})
             for n in range(300)]
    (node_dir / "many.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["import", "--data", str(node_dir), str(node_dir / "many.jsonl")]) == 0
    result = subprocess.run(
        f"{sys.executable} -m node.cli log --data {node_dir} --json | head -c 10",
        shell=True, capture_output=True, text=True, timeout=60,
    )
    assert "Traceback" not in result.stderr
