"""The `qmt-mcp` command: serve, worker, demo, health, audit verify, config init|show, and the operator's
kill-switch, risk reset and block (operator_cli.py)."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio

from . import __version__
from .config import Config, ConfigError, config_path, home_dir, load_config
from .console import add_command as add_console
from .operator_cli import add_commands
from .statedir import private_dir, private_unix_socket, write_private
from .worker.audit import AuditTrailBroken

log = logging.getLogger("qmt_mcp")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
GRACE_S = 3  # on shutdown, open event streams are closed after this long instead of awaited for ever
# The worker holds an idle connection this long; its clients (server/wire.py) let go well before.
WORKER_KEEP_ALIVE_S = 60


def _setup_logging(level: str) -> None:
    # stdout is the stdio transport: logs go to stderr only.
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level.upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _config(args: argparse.Namespace) -> tuple[Config, Path | None]:
    path = Path(args.config) if getattr(args, "config", None) else None
    cfg = load_config(path)
    if path is None and config_path().exists():
        path = config_path()
    return cfg, path


def cmd_serve(args: argparse.Namespace) -> int:
    from .server.app import ServerDeps, build_server
    from .server.supervisor import WorkerSupervisor
    from .server.worker_client import WorkerClient

    cfg, path = _config(args)
    transport = args.transport or cfg.server.transport
    host = args.host or cfg.server.host
    port = args.port or cfg.server.port
    if not cfg.worker.url and cfg.worker.backend == "xtquant" and cfg.xtquant.native != "sim":
        raise ConfigError("'worker.backend': a real-miniQMT xtquant worker runs on the Windows host next to "
                          "miniQMT (qmt-mcp worker --backend xtquant); set worker.url to reach it, or "
                          "[xtquant] native = \"sim\" to rehearse the xtquant path here")
    home = home_dir()

    @asynccontextmanager
    async def open_deps() -> AsyncIterator[ServerDeps]:
        timeout = cfg.worker.submit_timeout_s + 10
        if cfg.worker.url:
            token = os.environ.get(cfg.worker.token_env, "")
            client = WorkerClient.for_url(cfg.worker.url, token, timeout)
            try:
                yield ServerDeps(client, backend=cfg.worker.backend)
            finally:
                await client.aclose()
            return
        sup = WorkerSupervisor(home, path, timeout, cfg)
        client = await sup.start()
        async with anyio.create_task_group() as tg:
            tg.start_soon(sup.watch)
            try:
                yield ServerDeps(client, lambda: sup.restarts, cfg.worker.backend)
            finally:
                await sup.stop()
                tg.cancel_scope.cancel()

    server = build_server(open_deps, cfg.server.confirm_human, cfg.approval)
    if transport == "stdio":
        settle_heap()
        from .server.stdio_pipe import serve_stdio

        try:
            anyio.run(serve_stdio, server)
        except BaseExceptionGroup as group:
            # A refusal at start (the worker runs another configuration) comes out of the SDK's task
            # groups wrapped; say it like any other configuration error.
            raise _config_error_in(group) or group from None
        return 0
    import uvicorn

    from .server.conn_guard import MAX_HEAD_BYTES, guarded_h11, quiet_accept_failures
    from .server.http import http_app

    token = os.environ.get(cfg.server.token_env, "")
    app = http_app(server, transport, host, token, cfg.server.allowed_hosts, cfg.server.allowed_origins)
    print(f"qmt-mcp: serving {transport} on http://{host}:{port}/{'sse' if transport == 'sse' else 'mcp'}",
          file=sys.stderr)
    settle_heap()
    quiet_accept_failures()
    # guarded_h11: a client without the token cannot hold connections open with half-sent heads.
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False, http=guarded_h11(token),
                h11_max_incomplete_event_size=MAX_HEAD_BYTES)
    return 0


def _config_error_in(exc: BaseException) -> ConfigError | None:
    if isinstance(exc, ConfigError):
        return exc
    for inner in exc.exceptions if isinstance(exc, BaseExceptionGroup) else ():
        if (found := _config_error_in(inner)) is not None:
            return found
    return None


def settle_heap() -> None:
    """What start-up built (modules, schemas, the app) lives as long as the process. Freezing it
    keeps the cyclic collector from rescanning it on every full collection, which otherwise pauses a
    request for tens of milliseconds now and then (see benchmarks/run.py's p99)."""
    gc.collect()
    gc.freeze()


def cmd_worker(args: argparse.Namespace) -> int:
    import uvicorn

    from .backends.port import BrokerPort
    from .bootstrap import build_worker
    from .worker.call_protocol import CallProtocol
    from .worker.lock import HomeLock

    cfg, _ = _config(args)
    if args.backend:
        cfg = cfg.model_copy(update={"worker": cfg.worker.model_copy(update={"backend": args.backend})})
    token = os.environ.get(cfg.worker.token_env, "")
    if not token:
        raise ConfigError(f"set the worker's bearer token in ${cfg.worker.token_env} (every request must carry it)")
    host = args.host or "127.0.0.1"
    if args.supervise:
        from .worker.watchdog import Watch, run, worker_argv

        argv = worker_argv(sys.argv[1:])
        url = "http://worker" if args.uds else f"http://{host}:{args.port or 8766}"
        return run(Watch(argv, url, args.uds, token, args.health_interval, args.health_timeout, args.health_misses,
                         args.health_startup))
    if not args.uds and host not in LOOPBACK:
        # The token is required above, so this is allowed; still, the token travels in clear HTTP.
        log.warning("worker listening on %s: keep it behind an SSH tunnel or a firewall", host)
    home = private_dir(home_dir())
    faults = os.environ.get("QMT_MCP_FAULTS", "")
    wrap = None
    if faults:
        from .backends.faults import FaultInjectingBroker

        log.warning("QMT_MCP_FAULTS is set: injecting broker faults %r (for fault rehearsal only)", faults)

        def wrap(inner: BrokerPort) -> BrokerPort:
            return FaultInjectingBroker.from_spec(inner, faults)

    with HomeLock(home / "worker.lock"):
        worker = build_worker(cfg, home, wrap=wrap)
        app = worker.app(token)
        sock = None
        if args.uds:
            # Bound here, 0600: uvicorn would make a socket it binds itself 0666.
            sock = private_unix_socket(Path(args.uds))
            config = uvicorn.Config(app, fd=sock.fileno(), log_level="warning", access_log=False, http=CallProtocol,
                                    timeout_graceful_shutdown=GRACE_S, timeout_keep_alive=WORKER_KEEP_ALIVE_S)
        else:
            config = uvicorn.Config(app, host=host, port=args.port or 8766, log_level="warning", access_log=False,
                                    http=CallProtocol, timeout_graceful_shutdown=GRACE_S,
                                    timeout_keep_alive=WORKER_KEEP_ALIVE_S)
        server = uvicorn.Server(config)
        if args.exit_when_unleased:
            # Started by `qmt-mcp serve`: exit once no server holds it (worker/leases.py).
            worker.leases.exit_when_unleased(lambda: setattr(server, "should_exit", True))
        try:
            settle_heap()
            server.run()
        finally:
            if sock is not None:
                sock.close()
                Path(args.uds).unlink(missing_ok=True)   # nobody listens there any more (we still hold the lock)
            anyio.run(worker.close)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return anyio.run(run_demo, args.home)


def cmd_health(args: argparse.Namespace) -> int:
    from .server.supervisor import WorkerSupervisor
    from .server.worker_client import WorkerClient

    cfg, path = _config(args)

    async def run() -> dict[str, object]:
        if cfg.worker.url:
            client = WorkerClient.for_url(cfg.worker.url, os.environ.get(cfg.worker.token_env, ""))
            try:
                return await client.call("health", {})
            finally:
                await client.aclose()
        # Reports on whatever worker runs there, whatever its configuration: no comparison.
        sup = WorkerSupervisor(home_dir(), path, 30, cfg, compare=False)
        client = await sup.start()
        try:
            return await client.call("health", {})
        finally:
            await sup.stop()

    print(json.dumps(anyio.run(run), indent=2, ensure_ascii=False))
    return 0


def cmd_config(args: argparse.Namespace) -> int:
    from importlib import resources

    if args.action == "init":
        target = config_path()
        if target.exists() and not args.force:
            print(f"{target} exists; use --force to overwrite", file=sys.stderr)
            return 1
        if target.parent == home_dir():
            private_dir(target.parent)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
        text = resources.files("qmt_mcp._config_examples").joinpath("embedded.toml").read_text(encoding="utf-8")
        # A config written for a person starts with their live orders waiting for them; with no file at
        # all the embedded default (off) applies, as it always has.
        text = text.replace('\nhuman = "off"', '\nhuman = "live"', 1)
        write_private(target, text)   # account ids go in here: 0600 like the rest of the state
        print(f"wrote {target}")
        return 0
    cfg, path = _config(args)
    print(f"# from: {path or 'embedded defaults'}", file=sys.stderr)
    print(json.dumps(cfg.model_dump(mode="json"), indent=2, ensure_ascii=False))
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """verify: every record, and the trail's end against the journal's anchor (exit 1 if not intact).
    restart: after a person has looked at a broken trail, keep it aside and begin a new one with a note."""
    from datetime import datetime

    from .domain.timeutil import CN_TZ, iso
    from .worker.audit import restart, verify
    from .worker.journal import Journal, read_audit_head
    from .worker.lock import HomeLock

    home = home_dir()
    if args.action == "verify":
        ok, message = verify(home / "audit.jsonl", read_audit_head(home / "worker.sqlite"))
        print(message)
        return 0 if ok else 1
    if not args.note or not args.note.strip():
        raise ConfigError("audit restart needs --note: why the trail may begin again (it is its first record)")
    now = datetime.now(CN_TZ)
    with HomeLock(private_dir(home) / "worker.lock"):   # no worker may append meanwhile
        journal = Journal(home / "worker.sqlite")
        try:
            done, message = restart(home / "audit.jsonl", journal, args.note.strip(), iso(now),
                                    now.strftime("%Y%m%dT%H%M%S"))
        finally:
            journal.close()
    print(message)
    return 0 if done else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="qmt-mcp", description="MCP server for China A-shares via miniQMT/xtquant")
    p.add_argument("--version", action="version", version=f"qmt-mcp {__version__}")
    p.add_argument("--log-level", default=os.environ.get("QMT_MCP_LOG_LEVEL", "warning"))
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="run the MCP server (stdio by default) with an embedded worker")
    s.add_argument("--transport", choices=["stdio", "streamable-http", "sse"])
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--config")
    s.set_defaults(func=cmd_serve)

    w = sub.add_parser("worker", help="run the worker daemon (next to miniQMT, or the simulator)")
    w.add_argument("--backend", choices=["sim", "xtquant"])
    w.add_argument("--config")
    w.add_argument("--uds", help="listen on this Unix socket")
    w.add_argument("--host")
    w.add_argument("--port", type=int)
    w.add_argument("--exit-when-unleased", action="store_true",
                   help="exit once no MCP server holds a lease on this worker (how `qmt-mcp serve` starts it)")
    w.add_argument("--supervise", action="store_true",
                   help="run the worker as a child and restart it when it exits or its health check hangs")
    w.add_argument("--health-interval", type=float, default=10.0, help="seconds between health checks")
    w.add_argument("--health-timeout", type=float, default=5.0, help="seconds a health check may take")
    w.add_argument("--health-misses", type=int, default=3, help="missed checks in a row that mean a hang")
    w.add_argument("--health-startup", type=float, default=60.0, help="seconds a new worker has to answer at all")
    w.set_defaults(func=cmd_worker)

    d = sub.add_parser("demo", help="a scripted agent session through a real MCP client, printed")
    d.add_argument("--home", help="state dir for the demo (default: a fresh temporary one)")
    d.set_defaults(func=cmd_demo)

    h = sub.add_parser("health", help="print the worker's health")
    h.add_argument("--config")
    h.set_defaults(func=cmd_health)

    a = sub.add_parser("audit", help="audit trail tools")
    a.add_argument("action", choices=["verify", "restart"])
    a.add_argument("--note", help="restart: why the trail may begin again (recorded as its first record)")
    a.set_defaults(func=cmd_audit)

    c = sub.add_parser("config", help="write or show the configuration")
    c.add_argument("action", choices=["init", "show"])
    c.add_argument("--config")
    c.add_argument("--force", action="store_true")
    c.set_defaults(func=cmd_config)

    add_commands(sub)
    add_console(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    _setup_logging(args.log_level)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"qmt-mcp: {exc}", file=sys.stderr)
        return 2
    except AuditTrailBroken as exc:   # the worker will not run on a cut or rewritten trail
        print(f"qmt-mcp: {exc.message}\n{exc.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
