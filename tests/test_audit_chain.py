"""The audit trail after crashes, full disks and cuts: what a crash leaves is set aside and the worker
goes on; what only an edit can do (records removed from the end, a record rewritten) is caught by
`qmt-mcp audit verify` and stops the worker at start until a person restarts the trail with a note.

Real processes where it matters: `qmt-mcp worker` on a state dir, killed with SIGKILL, and the
`qmt-mcp audit` command. A real short write comes from the file-size limit (RLIMIT_FSIZE), which
needs no root, unlike the full tmpfs of tests/test_storage_faults.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import anyio
import pytest
from conftest import make_worker
from workerproc import WorkerProcess

from qmt_mcp.clock import ManualClock
from qmt_mcp.config import parse_config
from qmt_mcp.domain.errors import ErrorCode
from qmt_mcp.worker.audit import AuditLog, AuditTrailBroken, verify
from qmt_mcp.worker.journal import Journal, read_audit_head

pytestmark = pytest.mark.anyio
CONFIG = "[risk]\nenabled = false\n"
CFG = parse_config({"risk": {"enabled": False}})


def audit_cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QMT_MCP_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "qmt_mcp", "audit", *args], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def new_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "config.toml").write_text(CONFIG)
    return home


async def test_a_torn_last_audit_line_is_moved_aside_and_the_worker_starts(tmp_path: Path) -> None:
    home = new_home(tmp_path)
    audit = home / "audit.jsonl"
    with anyio.fail_after(120):
        first = WorkerProcess(home, 1)
        await first.ready()
        await first.buy("torn-1")
        await first.kill()
        # What a kill -9 in the middle of an append leaves: the start of a record, no newline.
        fragment = audit.read_bytes().splitlines()[-1][:57].replace(b'"n":1,', b'"n":2,')
        audit.write_bytes(audit.read_bytes() + fragment)
        assert audit_cli(home, "verify").returncode == 0   # never confirmed: not a break in the chain

        second = WorkerProcess(home, 2)
        await second.ready()   # it used to refuse to start until someone edited the file
        health = await second.client.call("health", {})
        assert health["worker"]["state"] == "degraded"
        [moved] = [q for q in health["worker"]["quarantined"] if q["file"] == "audit.jsonl"]
        kept = home / moved["moved_to"]
        assert moved["moved_to"].startswith("audit.jsonl.torn-") and kept.read_bytes() == fragment
        assert kept.stat().st_mode & 0o777 == 0o600
        await second.buy("torn-2")   # the chain goes on from the last whole record
        await second.stop()
    done = audit_cli(home, "verify")
    assert done.returncode == 0 and "intact: 2 records" in done.stdout, done.stdout


async def test_removing_the_last_audit_records_is_caught_by_verify_and_stops_the_worker(tmp_path: Path) -> None:
    home = new_home(tmp_path)
    audit = home / "audit.jsonl"
    with anyio.fail_after(180):
        first = WorkerProcess(home, 1)
        await first.ready()
        for i in range(3):
            await first.buy(f"cut-{i}")
        await first.stop()
        lines = audit.read_bytes().splitlines(keepends=True)
        audit.write_bytes(b"".join(lines[:1]))   # records 2 and 3 removed: still a whole chain

        found = audit_cli(home, "verify")
        assert found.returncode == 1 and "records 2 to 3 were removed" in found.stdout, found.stdout
        refused = WorkerProcess(home, 2)
        assert refused.proc.wait(timeout=60) == 2   # a cut trail is not a crash artefact: a person looks first
        assert "were removed" in refused.stderr()
        await refused.client.aclose()

        assert audit_cli(home, "restart").returncode == 2   # a restart needs the person's note
        restarted = audit_cli(home, "restart", "--note", "records 2-3 cut by the test; checked with the broker")
        assert restarted.returncode == 0, restarted.stderr
        [old] = home.glob("audit.jsonl.cut-*")
        assert old.read_bytes() == lines[0] and old.stat().st_mode & 0o777 == 0o600
        assert audit_cli(home, "restart", "--note", "again").returncode == 1   # intact now: nothing to do

        third = WorkerProcess(home, 3)
        await third.ready()
        await third.buy("cut-after")
        await third.stop()
    done = audit_cli(home, "verify")
    assert done.returncode == 0 and "intact: 2 records" in done.stdout and "restarted" in done.stdout, done.stdout
    first_record = json.loads(audit.read_bytes().splitlines()[0])
    assert first_record["call"] == "audit_restart" and first_record["previous"]["anchored_records"] == 3


def _trail(tmp_path: Path, records: int) -> tuple[Path, Journal]:
    journal = Journal(tmp_path / "worker.sqlite")
    log = AuditLog(tmp_path / "audit.jsonl", anchor=journal)
    for i in range(records):
        log.append({"call": "place_order", "i": i})
    return tmp_path / "audit.jsonl", journal


def test_an_edited_last_audit_record_stops_the_worker_and_names_its_line(
    clock: ManualClock, tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    make_worker(CFG, home, clock).journal.close()
    path, journal = _trail(home, 3)
    journal.close()
    lines = path.read_text().splitlines()
    edited = json.loads(lines[2])
    edited["i"] = 99
    path.write_text("\n".join([*lines[:2], json.dumps(edited)]) + "\n")
    with pytest.raises(AuditTrailBroken) as caught:
        make_worker(CFG, home, clock)
    assert caught.value.code is ErrorCode.INTERNAL and caught.value.details["line"] == 3
    ok, message = verify(path, read_audit_head(home / "worker.sqlite"))
    assert not ok and message.startswith("line 3")


@pytest.mark.parametrize("cut", ["rewritten_end", "file_removed", "all_lines_removed"])
def test_a_trail_that_does_not_reach_its_anchor_is_refused(tmp_path: Path, cut: str) -> None:
    path, journal = _trail(tmp_path, 3)
    if cut == "rewritten_end":
        # Records 2 and 3 replaced by a consistent chain of other records: whole, but not the anchored one.
        lines = path.read_text().splitlines()
        path.write_text(lines[0] + "\n")
        forged = AuditLog(path)
        forged.append({"call": "place_order", "i": "forged"})
        forged.append({"call": "place_order", "i": "forged too"})
    elif cut == "file_removed":
        path.unlink()
    else:
        path.write_text("")
    with pytest.raises(AuditTrailBroken) as caught:
        AuditLog(path, anchor=journal)
    assert caught.value.details.get("anchored_records", 3) == 3
    ok, _ = verify(path, journal.audit_head())
    assert not ok
    journal.close()


def test_a_trail_ahead_of_its_anchor_is_a_crash_between_two_writes_and_is_accepted(tmp_path: Path) -> None:
    path, journal = _trail(tmp_path, 2)
    AuditLog(path).append({"call": "cancel_order"})   # appended, the anchor not updated: a crash in between
    log = AuditLog(path, anchor=journal)
    assert journal.audit_head() == log.head and log.head[0] == 3
    assert verify(path, journal.audit_head()) == (True, "audit trail intact: 3 records, as anchored")
    journal.close()


def test_a_short_audit_write_is_cut_back_and_the_chain_goes_on(tmp_path: Path) -> None:
    """A real short write, without root: the file-size limit lets the write stop part-way (EFBIG)."""
    script = textwrap.dedent(f"""
        import resource, signal, sys
        from pathlib import Path
        from qmt_mcp.worker.audit import AuditLog
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # EFBIG instead of a signal
        path = Path({str(tmp_path / "audit.jsonl")!r})
        log = AuditLog(path)
        log.append({{"call": "place_order", "i": 1}})
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 40, hard))
        try:
            log.append({{"call": "place_order", "i": 2, "pad": "x" * 200}})
        except OSError:
            print("refused whole", path.stat().st_size)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        log.append({{"call": "place_order", "i": 3}})
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    size_after_refusal = int(done.stdout.split()[-1])
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert size_after_refusal == len(lines[0]) + 1   # the 40 bytes that did get written were cut back
    assert verify(tmp_path / "audit.jsonl") == (True, "audit trail intact: 2 records")
    assert [json.loads(line)["i"] for line in lines] == [1, 3]


def test_a_journal_without_an_anchor_adopts_the_trail_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    old = AuditLog(path)   # a trail from before anchors (or next to a journal that was quarantined)
    old.append({"call": "place_order"})
    journal = Journal(tmp_path / "worker.sqlite")
    log = AuditLog(path, anchor=journal)
    assert journal.audit_head() == log.head == (1, log.head[1])
    journal.close()


def test_with_a_flusher_a_call_does_not_wait_for_the_fsync_and_the_anchor_never_passes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker's mode: the record is in the file when append returns (a killed process loses
    nothing), the fsync runs on the flusher's thread, and the journal anchors only fsync'd records."""
    path, journal = _trail(tmp_path, 1)
    anchored = journal.audit_head()
    log = AuditLog(path, anchor=journal)
    log.start_flusher()
    in_fsync, go_on = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:   # a disk that takes its time: the flusher waits here
        in_fsync.set()
        assert go_on.wait(30)
        real_fsync(fd)

    monkeypatch.setattr("qmt_mcp.worker.audit.os.fsync", slow_fsync)
    log.append({"call": "place_order", "i": "a"})
    assert in_fsync.wait(30)
    log.append({"call": "cancel_order", "i": "b"})   # returns while the first fsync is still under way
    assert [json.loads(line)["i"] for line in path.read_text().splitlines()] == [0, "a", "b"]
    assert journal.audit_head() == anchored          # nothing anchored that is not on disk yet
    go_on.set()
    log.close()                                      # an orderly stop flushes what is left
    assert journal.audit_head() == log.head and log.head[0] == 3
    assert verify(path, journal.audit_head()) == (True, "audit trail intact: 3 records, as anchored")
    journal.close()


def test_a_failed_fsync_anchors_nothing_and_the_next_flush_catches_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    path, journal = _trail(tmp_path, 2)
    anchored = journal.audit_head()
    log = AuditLog(path, anchor=journal)
    real_fsync, failures = os.fsync, [OSError(5, "Input/output error")]

    def failing_once(fd: int) -> None:
        if failures:
            raise failures.pop()
        real_fsync(fd)

    monkeypatch.setattr("qmt_mcp.worker.audit.os.fsync", failing_once)
    with pytest.raises(OSError):
        log.append({"call": "place_order", "i": "written, not synced"})
    assert journal.audit_head() == anchored and log.head[0] == 3
    log.append({"call": "cancel_order"})
    assert journal.audit_head() == log.head and log.head[0] == 4
    log.close()
    journal.close()


def test_the_flusher_covers_what_a_window_gathers_with_one_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Appends within the flusher's window share one fsync (an fsync slows the worker's other writes
    beside it); nothing is anchored before it, and an orderly stop still flushes them."""
    path, journal = _trail(tmp_path, 1)
    anchored = journal.audit_head()
    log = AuditLog(path, anchor=journal)
    log.start_flusher(window_s=3600.0)   # the window outlasts the test: only close() flushes
    fsyncs: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr("qmt_mcp.worker.audit.os.fsync", lambda fd: (fsyncs.append(fd), real_fsync(fd))[1])
    for i in range(3):
        log.append({"call": "place_order", "i": i})
    assert fsyncs == [] and journal.audit_head() == anchored
    log.close()
    assert len(fsyncs) == 1 and journal.audit_head() == log.head and log.head[0] == 4
    journal.close()
