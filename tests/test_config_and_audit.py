"""Configuration errors name the key; the audit trail is chained and `qmt-mcp audit verify` finds tampering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from qmt_mcp.config import Config, ConfigError, load_config, parse_config
from qmt_mcp.worker.audit import AuditLog, verify


def test_no_config_file_means_the_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QMT_MCP_HOME", str(tmp_path))
    monkeypatch.delenv("QMT_MCP_CONFIG", raising=False)
    cfg = load_config()
    assert list(cfg.accounts) == ["sim"] and cfg.worker.backend == "sim" and cfg.sim.clock == "continuous"


def test_unknown_key_is_an_error_that_names_it() -> None:
    with pytest.raises(ConfigError, match=r"sim\.seeed"):
        parse_config({"sim": {"seeed": 1}})
    with pytest.raises(ConfigError, match=r"accounts\.sim\.risk\.max_order_valu"):
        parse_config({"accounts": {"sim": {"account_id": "1", "risk": {"max_order_valu": 5}}}})


def test_every_shipped_example_config_parses_or_says_why() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[1] / "config"
    embedded = parse_config(tomllib.loads((root / "embedded.toml").read_text(encoding="utf-8")))
    assert embedded == Config()
    remote = parse_config(tomllib.loads((root / "remote-worker.toml").read_text(encoding="utf-8")))
    assert remote.worker.url == "http://127.0.0.1:8766"
    windows = parse_config(tomllib.loads((root / "windows-worker.toml").read_text(encoding="utf-8")))
    assert windows.worker.backend == "xtquant" and windows.accounts["main"].live


def _write(path: Path, n: int) -> None:
    log = AuditLog(path)
    for i in range(n):
        log.append({"call": "place_order", "i": i})


def test_intact_audit_trail_verifies(tmp_path: Path) -> None:
    _write(tmp_path / "audit.jsonl", 3)
    AuditLog(tmp_path / "audit.jsonl").append({"call": "cancel_order"})  # reopened: the chain continues
    assert verify(tmp_path / "audit.jsonl") == (True, "audit trail intact: 4 records")


@pytest.mark.parametrize("tamper", ["edit", "reorder", "truncate_middle"])
def test_tampered_audit_trail_is_named(tmp_path: Path, tamper: str) -> None:
    path = tmp_path / "audit.jsonl"
    _write(path, 4)
    lines = path.read_text().splitlines()
    if tamper == "edit":
        rec = json.loads(lines[1])
        rec["i"] = 99
        lines[1] = json.dumps(rec)
    elif tamper == "reorder":
        lines[1], lines[2] = lines[2], lines[1]
    else:
        del lines[1]
    path.write_text("\n".join(lines) + "\n")
    ok, message = verify(path)
    assert not ok and "line 2" in message


def test_audit_verify_command_exit_code(tmp_path: Path) -> None:
    _write(tmp_path / "audit.jsonl", 2)
    env = {"QMT_MCP_HOME": str(tmp_path), "PATH": ""}
    res = subprocess.run([sys.executable, "-m", "qmt_mcp", "audit", "verify"], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 0 and "2 records" in res.stdout
    (tmp_path / "audit.jsonl").write_text("garbage\n")
    res = subprocess.run([sys.executable, "-m", "qmt_mcp", "audit", "verify"], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 1


def test_worker_without_a_bearer_token_refuses_to_start(tmp_path: Path) -> None:
    env = {"QMT_MCP_HOME": str(tmp_path), "PATH": ""}
    res = subprocess.run([sys.executable, "-m", "qmt_mcp", "worker", "--port", "1"], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert res.returncode == 2 and "QMT_WORKER_TOKEN" in res.stderr
