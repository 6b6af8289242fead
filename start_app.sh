#!/usr/bin/env bash
# Install (if needed) and start the i2v studio web app. Safe to re-run.
#   ./start_app.sh [--host ADDR] [--port N] [--model ID_OR_DIR] [--share]
# Settings also come from the environment: I2V_* variables, OPENAI_BASE_URL, OPENAI_API_KEY (see README).
set -euo pipefail
cd "$(dirname "$0")"

host="${I2V_HOST:-127.0.0.1}"
port="${I2V_PORT:-7860}"
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --host) host="${2:?--host needs an address}"; shift 2 ;;
        --port) port="${2:?--port needs a number}"; shift 2 ;;
        --model) args+=(--model "${2:?--model needs a family id or folder}"); shift 2 ;;
        --share) args+=(--share); shift ;;
        -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "start_app.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$port" in ''|*[!0-9]*) echo "start_app.sh: --port $port is not a number" >&2; exit 2 ;; esac

./install.sh

# Only a listening socket makes the port busy: SO_REUSEADDR (as the server itself binds) lets the
# check pass over the TIME_WAIT connections a stopped or crashed app leaves for about a minute.
if ! .venv/bin/python - "$host" "$port" <<'PY'
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sys.exit(1)
PY
then
    echo "start_app.sh: port $port on $host is in use: stop what is using it, or pass --port N" >&2
    exit 1
fi

if [ "$host" != "127.0.0.1" ] && [ "$host" != "localhost" ] && [ "$host" != "::1" ] && [ -z "${I2V_AUTH:-}" ]; then
    echo "WARNING: listening on $host without I2V_AUTH: anyone who can reach port $port can use this GPU." >&2
    echo "         Set I2V_AUTH=user:password to require a login." >&2
fi

mkdir -p logs
log="logs/app_$(date +%Y%m%d_%H%M%S).log"
echo "logging to $log"
export GRADIO_ANALYTICS_ENABLED="${GRADIO_ANALYTICS_ENABLED:-False}"
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
.venv/bin/python -u app.py --host "$host" --port "$port" "${args[@]}" 2>&1 | tee "$log"
