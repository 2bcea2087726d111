"""The state dir and every file in it are private to the user who runs qmt-mcp: dir 0700, files 0600.

They hold the full account ids (sim.sqlite, worker.sqlite, audit.jsonl, config.toml), the key that
signs confirm tokens (confirm.key: whoever reads it can mint tokens), the worker's bearer token
(worker.json) and the operator key (operator.key: whoever reads it can flip the kill switch). So
files are created 0600 whatever the umask, and at every start the dir and what is
already in it (made by an older version, by hand, or copied in) are tightened, with a warning for
the dir. A dir that is not ours (QMT_MCP_HOME=/tmp) is not changed, only warned about.

SQLite gives a database's -wal and -shm files the mode of the database file itself, so creating the
database 0600 before SQLite opens it covers them too (`private_sqlite`).

What another server finds there (worker.json: where the worker listens and its token; the socket
itself) is trusted only if this user owns it and nobody else can write it or the dir it is in
(`distrust`): otherwise a user who can write there could point the server at a worker of their own,
which would then receive the server's token and every order with its confirm token.

POSIX only: on Windows a user's profile folder is private through its ACL, and chmod there only sets
or clears the read-only flag, so these functions create what is missing and change nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal

log = logging.getLogger("qmt_mcp.statedir")
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


Kind = Literal["dir", "file", "socket"]
_IS: dict[str, Callable[[int], bool]] = {"dir": stat.S_ISDIR, "file": stat.S_ISREG, "socket": stat.S_ISSOCK}


def distrust(path: Path, kind: Kind) -> str | None:
    """Why `path` cannot be trusted as this user's own `kind`, or None if it can.

    Trusted: really a `kind`, owned by this user, not writable by group or others. A file or socket
    must not be a symlink; a dir may be reached through one (QMT_MCP_HOME set to a link is the user's
    own choice). A dir with the sticky bit (the shared temp dir) owned by root or this user is trusted
    as a place: others may add files there but cannot replace ours, and what is in it is checked
    itself. A missing path gives "missing"."""
    if sys.platform == "win32":
        return None   # no POSIX owners or modes: the user's profile folder is private through its ACL
    try:
        st = os.stat(path) if kind == "dir" else os.lstat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"{path} cannot be examined ({exc.strerror})"
    if not _IS[kind](st.st_mode):
        return f"{path} is not a {kind}" + (" (a symlink)" if stat.S_ISLNK(st.st_mode) else "")
    uid = os.getuid()
    if kind == "dir" and st.st_mode & stat.S_ISVTX and st.st_uid in (uid, 0):
        return None
    if st.st_uid != uid:
        return f"{path} belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"{path} can be written by other users (mode {oct(st.st_mode & 0o777)})"
    return None


def private_dir(path: Path) -> Path:
    """Create the state dir (and its parents) if missing, make it 0700 and every file in it 0600."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    if sys.platform == "win32":
        return path
    st = path.stat()
    if st.st_mode & 0o077:
        loose = oct(st.st_mode & 0o777)
        if st.st_uid == os.getuid():
            os.chmod(path, PRIVATE_DIR)
            log.warning("state dir %s was open to other users (%s); made it 0700", path, loose)
        else:
            log.warning("state dir %s (%s) belongs to another user and is open to others: its files are "
                        "0600, but set QMT_MCP_HOME to a dir of your own", path, loose)
    with os.scandir(path) as entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                tighten(Path(entry.path))
    return path


def tighten(path: Path) -> None:
    """Make an existing file (or socket) of ours 0600; a missing one, a symlink or a dir is left alone."""
    if sys.platform == "win32":
        return
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode) or stat.S_ISDIR(st.st_mode) or not st.st_mode & 0o077:
        return
    if st.st_uid != os.getuid():
        # Not ours to change (a shared dir such as /tmp: private_dir has warned about the dir already).
        log.debug("state file %s (%s) belongs to another user; left as it is", path, oct(st.st_mode & 0o777))
        return
    # It may be gone meanwhile: SQLite drops its -wal at the last close, worker.json.tmp is renamed.
    with contextlib.suppress(FileNotFoundError):
        os.chmod(path, PRIVATE_FILE)


def create_private(path: Path) -> None:
    """Make sure `path` exists as a 0600 file, without truncating it (an existing one is tightened)."""
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))
    tighten(path)   # os.open's mode applies only when it creates the file, and through the umask


def private_sqlite(path: Path) -> str:
    """The database path for sqlite3.connect, with the file created 0600 first (its -wal and -shm
    follow its mode; left-over ones from before are tightened)."""
    create_private(path)
    for suffix in ("-wal", "-shm", "-journal"):
        tighten(path.with_name(path.name + suffix))
    return str(path)


def write_private(path: Path, text: str) -> None:
    """Write a text file that only its owner may read (replacing its content)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    tighten(path)


def private_unix_socket(path: Path) -> socket.socket:
    """A Unix socket bound at `path` that only its owner can connect to, not yet listening.

    uvicorn makes a socket it binds itself 0666; binding here and handing it the descriptor keeps it
    0600, which matters most when a long home dir puts the socket in the shared temp dir. The mode
    is set before listen(), so nobody can connect in between."""
    if sys.platform == "win32":
        raise OSError("Unix sockets are for POSIX hosts; the worker listens on a loopback port on Windows")
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, PRIVATE_FILE)
    except OSError:
        sock.close()
        raise
    return sock
