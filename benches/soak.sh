#!/usr/bin/env bash
# s3gate under steady mixed traffic for a while, watched for leaks:
#
#   benches/soak.sh [MINUTES]        (default 10; at least 2)
#
# Starts moto on loopback (STS, IAM and S3: two customer roles, each trusting
# the gateway's IAM user with its own external ID) and s3gate (release build)
# with two integrations on moto's S3 that assume those roles with 60-second
# sessions (refreshed 12 s before they expire: [sts] defaults, expiry margin
# 5 s), the media cache on (16 MiB of memory, less than the cold objects), a
# bearer token client and a SigV4 client. wrk (one thread, 4 connections, each
# pausing 30 ms between requests) sends a fixed mix (benches/soak_client.py):
# GET and batch POST /v1/presign, /v1/object redirects, proxied Range and
# whole reads (cache hits on a hot object, misses on 300 cold ones),
# /v1/list, and S3 front GETs signed in the header and presigned. One cycle of
# the mix is checked first, each request for its exact status.
#
# Every minute it prints requests, errors (non-2xx/3xx answers and socket
# errors), p99 latency, s3gate's RSS and open fds, AssumeRole calls per role
# (s3gate's sts_calls_total) and cache hits/misses. At the end: RSS and fds at
# the start (after the first, warm-up minute), middle and end with their drift,
# total errors, and AssumeRole calls per role (s3gate's count and moto's)
# against the expected refreshes. Goals: 0 errors, drift under 10%, one call
# per session lifetime; it exits 1 when one is missed.
#
# Needs wrk (installed as root if missing), curl and python3; moto and boto3
# come from the test venv ($S3GATE_TEST_VENV, or .venv, made as scripts/test
# makes it). Traffic stays on loopback; everything it started is killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
case "$minutes" in '' | *[!0-9]* | 0 | 1) echo "usage: benches/soak.sh [MINUTES]  (at least 2)" >&2; exit 2 ;; esac
prog=benches/soak.sh
# shellcheck source=benches/lib.sh
. benches/lib.sh

connections=4 delay_ms=30 session_s=60
if ! command -v wrk >/dev/null; then
    [ "$(id -u)" = 0 ] || die "needs wrk (apt-get install wrk)"
    say "installing wrk"
    apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
for tool in curl python3; do command -v "$tool" >/dev/null || die "$tool not found"; done

export AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL=http://127.0.0.1:9
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE S3GATE_LOG

venv=${S3GATE_TEST_VENV:-$PWD/.venv}
if [ ! -x "$venv/bin/moto_server" ]; then
    say "installing the test components into $venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet -r tests/requirements.txt
fi
py="$venv/bin/python"

say "building s3gate (release)"
cargo build --release --quiet
s3gate=target/release/s3gate
bench_dir

# --- moto: STS, IAM and S3 ----------------------------------------------------------
"$venv/bin/moto_server" -H 127.0.0.1 -p 0 >/dev/null 2>"$dir/moto.log" &
pids+=($!)
wait_for "$dir/moto.log" "Running on " 30
moto=$(sed -n 's/.*Running on \(http:[^ ]*\).*/\1/p' "$dir/moto.log" | head -1)
deadline=$((SECONDS + 30))
until curl -sf -o /dev/null --max-time 2 "$moto/moto-api/"; do
    [ $SECONDS -lt $deadline ] || die "moto at $moto never answered"
    sleep 0.1
done
say "moto on $moto: creating objects, the gateway's user and two roles"
"$py" benches/soak_client.py objects "$moto"
ext_acme=soak-ext-acme-4d1 ext_globex=soak-ext-globex-9b2
"$py" tests/support/moto_setup.py "$moto" "acme=$ext_acme" "globex=$ext_globex" >"$dir/setup.json"
field() { "$py" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2], {}, d))' "$dir/setup.json" "$1"; }
identity_key=$(field access_key_id)
field secret_access_key >"$dir/identity-secret"
arn_acme=$(field 'roles["acme"]')
arn_globex=$(field 'roles["globex"]')

# --- s3gate ---------------------------------------------------------------------------
token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
token_sha=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
client_key=SOAKCLIENT0000000001
export S3GATE_SOAK_CLIENT_SECRET=soak-client-secret-0123456789
integration() { # NAME BUCKET ROLE_ARN EXTERNAL_ID DELIVERY
    cat <<EOF

[[integrations]]
name = "$1"
bucket = "$2"
endpoint_url = "$moto"
role_arn = "$3"
external_id = "$4"
sts_endpoint = "$moto"
session_duration_s = $session_s
delivery = "$5"
EOF
}
{
    cat <<EOF
[server]
listen = "127.0.0.1:0"

[identity.credentials]
access_key_id = "$identity_key"
secret_access_key_file = "$dir/identity-secret"

[sts]
expiry_margin_s = 5

[cache]
memory_mb = 16
revalidate_after_s = 600

[[clients]]
name = "soak"
token_sha256 = ["$token_sha"]
access_key_id = "$client_key"
secret_access_key_env = "S3GATE_SOAK_CLIENT_SECRET"
integrations = ["*"]
metrics = true
EOF
    integration acme media "$arn_acme" "$ext_acme" redirect
    integration globex vault "$arn_globex" "$ext_globex" proxy
} >"$dir/s3gate.toml"
# 60 s sessions refreshed with min(300 s, 0.2 × 60 s) = 12 s left: every 48 s.
refresh_every_s=48
"$s3gate" serve --config "$dir/s3gate.toml" >"$dir/s3gate.log" 2>&1 &
gw_pid=$!
pids+=("$gw_pid")
wait_for "$dir/s3gate.log" "listening on http://" 60
port=$(strip_ansi "$dir/s3gate.log" | sed -n 's|.*listening on http://127.0.0.1:\([0-9]*\).*|\1|p' | head -1)
say "s3gate on 127.0.0.1:$port (pid $gw_pid)"

metric() { # NAME LABELS: the value of one s3gate counter (0 if absent).
    curl -sf --max-time 10 -H "Authorization: Bearer $token" "http://127.0.0.1:$port/metrics" |
        awk -v m="s3gate_$1{$2}" '$1 == m {print $2; found = 1} END {if (!found) print 0}'
}
sts_calls() { metric sts_calls_total "integration=\"$1\""; }
cache_count() { metric cache_requests_total "integration=\"globex\",status=\"$1\""; }

first_call=$SECONDS
"$py" benches/soak_client.py check "$port" "$token" "$client_key" "$S3GATE_SOAK_CLIENT_SECRET" >/dev/null ||
    die "a request of the mix answered an unexpected status"
rss0=$(rss_kb "$gw_pid") fds0=$(open_fds "$gw_pid")
say "checked one cycle of the mix; RSS $((rss0 / 1024)) MiB, $fds0 fds before the soak"

# --- the soak -------------------------------------------------------------------------
printf '\n| minute | requests | req/s | errors | p99 | RSS (MiB) | fds | AssumeRole acme (total) | AssumeRole globex (total) | cache hits (total) | cache misses (total) |\n'
printf '| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
total_requests=0 total_errors=0 rss_at=() fds_at=()
middle=$(((minutes + 1) / 2))
for minute in $(seq "$minutes"); do
    "$py" benches/soak_client.py lua "$port" "$token" "$client_key" "$S3GATE_SOAK_CLIENT_SECRET" \
        "$delay_ms" "$minute" "$dir/mix.lua"
    wrk -t1 -c"$connections" -d60s --timeout 10s --latency -s "$dir/mix.lua" "http://127.0.0.1:$port" \
        >"$dir/wrk-$minute.txt" 2>&1 &
    pids+=($!)
    wait $! || die "wrk failed: $(cat "$dir/wrk-$minute.txt")"
    out="$dir/wrk-$minute.txt"
    requests=$(awk '/requests in/ {print $1}' "$out")
    rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$out")
    p99=$(awk '$1 == "99%" {print $2}' "$out")
    non2xx=$(awk '/Non-2xx or 3xx/ {print $NF}' "$out")
    sockets=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out")
    errors=$((${non2xx:-0} + ${sockets:-0}))
    total_requests=$((total_requests + requests))
    total_errors=$((total_errors + errors))
    rss=$(rss_kb "$gw_pid") fds=$(open_fds "$gw_pid")
    rss_at[minute]=$rss fds_at[minute]=$fds
    printf '| %d | %d | %s | %d | %s | %.1f | %d | %s | %s | %s | %s |\n' "$minute" "$requests" "$rps" "$errors" "$p99" \
        "$(awk -v k="$rss" 'BEGIN {print k / 1024}')" "$fds" "$(sts_calls acme)" "$(sts_calls globex)" \
        "$(cache_count hit)" "$(cache_count miss)"
done
elapsed=$((SECONDS - first_call))

# --- the verdict ------------------------------------------------------------------------
kill -0 "$gw_pid" 2>/dev/null || die "s3gate died: $(tail -20 "$dir/s3gate.log")"
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.1f", (b - a) * 100 / a }'; }
within() { awk -v a="$1" -v b="$2" 'BEGIN { d = (b - a) / a; exit !(d < 0.10 && d > -0.10) }'; }
rss_a=${rss_at[1]} rss_m=${rss_at[middle]} rss_z=${rss_at[minutes]}
fds_a=${fds_at[1]} fds_m=${fds_at[middle]} fds_z=${fds_at[minutes]}
failed=0
echo
echo "s3gate $(git describe --always --dirty 2>/dev/null || echo '?'), $minutes minutes, wrk -t1 -c$connections with ${delay_ms} ms pauses; $(nproc) cores"
printf 'RSS (MiB): before %.1f, start (after minute 1) %.1f, middle (minute %d) %.1f, end %.1f; drift after warm-up %s%%\n' \
    "$(awk -v k="$rss0" 'BEGIN {print k / 1024}')" "$(awk -v k="$rss_a" 'BEGIN {print k / 1024}')" "$middle" \
    "$(awk -v k="$rss_m" 'BEGIN {print k / 1024}')" "$(awk -v k="$rss_z" 'BEGIN {print k / 1024}')" "$(pct "$rss_a" "$rss_z")"
printf 'open fds: before %d, start %d, middle %d, end %d; drift after warm-up %s%%\n' \
    "$fds0" "$fds_a" "$fds_m" "$fds_z" "$(pct "$fds_a" "$fds_z")"
within "$rss_a" "$rss_z" || { echo "GOAL MISSED: RSS drifted 10% or more after warm-up"; failed=1; }
# An fd count is small: a drift of a few (wrk's reconnects caught mid-way) is noise.
[ $((fds_z - fds_a)) -le 4 ] || within "$fds_a" "$fds_z" || { echo "GOAL MISSED: open fds drifted 10% or more"; failed=1; }
echo "requests: $total_requests; errors: $total_errors"
[ "$total_errors" = 0 ] || { echo "GOAL MISSED: $total_errors errors"; failed=1; }
expected=$((elapsed / refresh_every_s + 1))
echo "AssumeRole per role over ${elapsed} s (${session_s} s sessions, refreshed every ${refresh_every_s} s): expected $expected (±1)"
while read -r arn issued; do
    name=${arn##*/}
    calls=$(sts_calls "$name")
    echo "  $name: s3gate counted $calls, moto issued $issued"
    if [ $((calls - expected)) -gt 1 ] || [ $((expected - calls)) -gt 1 ] || [ "$calls" != "$issued" ]; then
        echo "GOAL MISSED: $name's AssumeRole calls"
        failed=1
    fi
done < <("$py" benches/soak_client.py sessions "$moto" "$arn_acme" "$arn_globex")
panics=$(grep -c 'panicked' "$dir/s3gate.log" || true)
[ "$panics" = 0 ] || { echo "GOAL MISSED: s3gate's log has $panics panics"; failed=1; }
[ "$failed" = 0 ] && echo "all goals met"
exit "$failed"
