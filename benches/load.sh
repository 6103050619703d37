#!/usr/bin/env bash
# Load test on loopback: the gateway against direct access to the store, in one run.
#
#   benches/load.sh [DURATION_S] [CONNECTIONS]
#
# Starts `s3gate demo` (release build) with its embedded SigV4-verifying store,
# then drives wrk (Debian package `wrk`) against:
#   direct   a presigned URL straight to the store          (the reference)
#   proxy    the same object streamed through the gateway   (S3 front, re-signed per request)
#   object   /v1/object proxy delivery through the JSON API
#   presign  GET /v1/presign (resolve + credentials + SigV4 presign)
# and prints requests/s and each one's ratio to `direct`. Machines here are
# shared and noisy: read the ratios, not the absolute numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10}
connections=${2:-32}
command -v wrk >/dev/null || { echo "benches/load.sh: wrk not found (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet
dir=$(mktemp -d)
log="$dir/demo.out"
export AWS_EC2_METADATA_DISABLED=true S3GATE_LOG=warn
target/release/s3gate demo --dir "$dir" --listen 127.0.0.1:0 --gallery-listen 127.0.0.1:0 >"$log" 2>"$dir/demo.err" &
demo=$!
trap 'kill $demo 2>/dev/null; wait $demo 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do grep -q "Ctrl-C" "$log" 2>/dev/null && break; sleep 0.1; done
gateway=$(awk '$1 == "gateway" {print $2}' "$log")
[ -n "$gateway" ] || { echo "demo did not start:" >&2; cat "$dir/demo.err" >&2; exit 1; }
key="images/gradient-red.png"
direct=$(curl -sf "$gateway/v1/presign?locator=s3://demo-stream/$key&expires=3600" | sed -E 's/.*"url":"([^"]*)".*/\1/')

run() { # name url → requests/s
    local rps
    rps=$(wrk -t2 -c"$connections" -d"${duration}s" "$2" | awk '/Requests\/sec/ {print $2}')
    printf '%s %s\n' "$1" "$rps"
}
results=$(
    run direct "$direct"
    run proxy "$gateway/demo-stream/$key"
    run object "$gateway/v1/object?locator=s3://demo-stream/$key"
    run presign "$gateway/v1/presign?locator=s3://demo/$key"
)
size=$(curl -sf "$direct" | wc -c)
echo "object: $key ($size bytes); wrk -t2 -c$connections -d${duration}s on $(nproc) cores"
echo "$results" | awk 'NR == 1 {ref = $2} {printf "%-8s %10.0f req/s   %5.2fx direct\n", $1, $2, $2 / ref}'
