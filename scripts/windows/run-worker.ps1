# Runs the qmt-mcp worker next to miniQMT, under its own watchdog (--supervise restarts it when it
# crashes or stops answering its health check).
#
# Before the first run:
#   1. pip install "qmt-mcp[xtquant]"   (in the Python that will run this script)
#   2. copy config\windows-worker.toml to %USERPROFILE%\.qmt_mcp\config.toml and edit qmt_path and the account
#   3. put a long random token in %USERPROFILE%\.qmt_mcp\worker.token (the MCP server side needs the same one)
#   4. start miniQMT (极简模式) and log in
#
# The token is read from the file into the environment, never put on the command line.

$ErrorActionPreference = "Stop"
$home_dir = if ($env:QMT_MCP_HOME) { $env:QMT_MCP_HOME } else { Join-Path $env:USERPROFILE ".qmt_mcp" }
$config = Join-Path $home_dir "config.toml"
$token_file = Join-Path $home_dir "worker.token"

if (-not (Test-Path $token_file)) { throw "missing $token_file (one line: the worker's bearer token)" }
$env:QMT_WORKER_TOKEN = (Get-Content $token_file -Raw).Trim()

# Loopback only: other machines reach it through the SSH tunnel (scripts\windows\tunnel.sh on their side).
python -m qmt_mcp worker --backend xtquant --config $config --host 127.0.0.1 --port 8766 --supervise
