#!/bin/sh
# On the machine where the MCP server runs (Linux or macOS): forward local port 8766 to the worker,
# which listens on 127.0.0.1:8766 of the Windows host. The Windows host needs OpenSSH Server
# (Settings > Apps > Optional features). Keep this running; it reconnects when the link drops.
#
#   scripts/windows/tunnel.sh you@windows-host
#
# Then start the server with config/remote-worker.toml (worker.url = "http://127.0.0.1:8766") and
# the same bearer token in $QMT_WORKER_TOKEN.
set -eu
target="${1:?usage: tunnel.sh user@windows-host}"
while true; do
    # ExitOnForwardFailure: fail fast if the local port is taken; keepalives notice a dead link.
    ssh -N -o ExitOnForwardFailure=yes -o ServerAliveInterval=15 -o ServerAliveCountMax=3 \
        -L 8766:127.0.0.1:8766 "$target" || true
    echo "tunnel to $target dropped; reconnecting in 5 s" >&2
    sleep 5
done
