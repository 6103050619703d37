#!/usr/bin/env bash
# s3gate against reference servers on loopback, in one run:
#
#   benches/load.sh [SECONDS]        (default 10 s per load run, ~13 minutes)
#
# Starts Debian's nginx as the upstream store (static files, path-style
# /bucket/key, HEAD, Range, ETag), a second nginx as the peer (proxy_pass to
# that store; proxy_cache on another port; TLS + HTTP/2 on a third), a trivial
# hyper handler (benches/trivial.rs) as the ceiling of the JSON endpoints, and
# s3gate (release build, default info log with its access log) with a
# generated config: one static-key integration on the nginx store, a bearer
# token client for the JSON API, anonymous S3 front (loopback only). Each
# scenario is checked with curl (2xx, byte count) before it is loaded, each wrk
# run must report no non-2xx/3xx response, and the script prints one Markdown
# table: scenario, reference, the reference's and s3gate's figures, their
# ratio and p99 latencies. wrk runs with one thread (-t1): the load generator,
# the gateway and the reference share the machine's cores. Read the ratios:
# absolute figures move with the machine and its neighbours. The throughput
# comparisons run in rounds, reference and s3gate in turn
# (S3GATE_BENCH_ROUNDS, default 3), and report each side's median: one
# neighbour's burst then moves one round, not the row.
#
# Scenario "fastapi" is what a team would write instead of s3gate's presign
# endpoint: benches/fastapi_presign.py (FastAPI + boto3) under uvicorn with 2
# workers, loaded like s3gate's GET /v1/presign.
#
# S3GATE_BENCH_KEEP=1 keeps the scratch folder (configs, logs, wrk output,
# callgrind files) and prints its path.
#
# S3GATE_BENCH_ONLY="presign fastapi" runs only the named scenarios (space-
# separated; unset or empty: all), for the inner loop. The scenarios, in
# order: presign (1), fastapi (1b), object (2), batch (3), stream (4), cache
# (5), crowd (5b), h2 (6), memory (7), instructions (8). fastapi alone loads
# s3gate's presign once for its row; the peak RSS row of memory comes from
# stream.
#
# Needs wrk, nginx, h2load, Debian's jemalloc, curl, openssl, python3 and
# valgrind; as root it installs the Debian packages wrk, nginx-light,
# nghttp2-client and libjemalloc2 if missing. The HTTP/2 scenario also runs
# a second s3gate with jemalloc preloaded, the allocator README suggests for
# HTTP/2 + TLS serving.
# fastapi, uvicorn and boto3 come from the test venv ($S3GATE_TEST_VENV, or
# .venv, made as scripts/test makes it; installed from tests/requirements.txt
# when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
case "$secs" in '' | *[!0-9]*) echo "usage: benches/load.sh [SECONDS]" >&2; exit 2 ;; esac
rounds=${S3GATE_BENCH_ROUNDS:-3}
case "$rounds" in '' | *[!0-9]* | 0) echo "S3GATE_BENCH_ROUNDS must be a count of rounds, 1 or more" >&2; exit 2 ;; esac

prog=benches/load.sh
# shellcheck source=benches/lib.sh
. benches/lib.sh

scenarios="presign fastapi object batch stream cache crowd h2 memory instructions"
only=${S3GATE_BENCH_ONLY:-}
for name in $only; do
    case " $scenarios " in *" $name "*) ;; *) die "S3GATE_BENCH_ONLY: no scenario '$name' (scenarios: $scenarios)" ;; esac
done
# want NAME: whether scenario NAME runs. Each numbered section below is one
# `if want NAME; then ... fi`, its body left unindented (its lines as they were).
want() { [ -z "${only// /}" ] || [[ " $only " == *" $1 "* ]]; }

nginx=/usr/sbin/nginx
# Debian's jemalloc, preloaded into a second s3gate for the HTTP/2 row.
jemalloc=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2
if ! command -v wrk >/dev/null || ! command -v h2load >/dev/null || [ ! -x "$nginx" ] || [ ! -f "$jemalloc" ]; then
    [ "$(id -u)" = 0 ] || die "needs wrk, h2load, $nginx and $jemalloc (apt-get install nginx-light wrk nghttp2-client libjemalloc2)"
    say "installing nginx-light wrk nghttp2-client libjemalloc2"
    apt-get update -qq >/dev/null && apt-get install -y -qq nginx-light wrk nghttp2-client libjemalloc2 >/dev/null
fi
for tool in curl openssl python3 valgrind; do
    command -v "$tool" >/dev/null || die "$tool not found (apt-get install $tool)"
done
if want fastapi; then
    venv=${S3GATE_TEST_VENV:-$PWD/.venv}
    has_fastapi() { "$venv/bin/python" -c 'import boto3, fastapi, httptools, uvicorn, uvloop' 2>/dev/null; }
    if ! has_fastapi; then
        say "installing the test components (fastapi, uvicorn, boto3) into $venv"
        python3 -m venv "$venv" || die "python3 -m venv $venv failed"
        "$venv/bin/python" -m pip install --quiet -r tests/requirements.txt || die "pip install -r tests/requirements.txt failed"
        has_fastapi || die "fastapi, uvicorn[standard] or boto3 missing from $venv after the install"
    fi
fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
[ "$(ulimit -n)" -ge 12000 ] || die "needs 12000 open files (ulimit -n), has $(ulimit -n)"

say "building s3gate (release) and the trivial handler"
cargo build --release --quiet
trivial_bin=$(cargo bench --no-run --bench trivial --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\/trivial-[^"]*\)".*/\1/p' | tail -1)
[ -x "$trivial_bin" ] || die "could not build benches/trivial.rs"
s3gate=target/release/s3gate

bench_dir

# --- the objects ------------------------------------------------------------
www="$dir/www"
mkdir -p "$www/bench" "$www/cached" "$dir/tmp"
head -c 102400 /dev/urandom >"$www/bench/obj100k"
head -c 12288 /dev/urandom >"$www/bench/obj12k"
head -c 10485760 /dev/urandom >"$www/bench/obj10m"
cp "$www/bench/obj100k" "$www/cached/obj100k"
cp "$www/bench/obj10m" "$www/cached/crowd-s3gate"
cp "$www/bench/obj10m" "$www/cached/crowd-nginx"
chmod -R a+rX "$www"

# --- TLS --------------------------------------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 \
    -addext subjectAltName=IP:127.0.0.1 -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null

# --- nginx: the upstream store and the peer -----------------------------------
user_line=""
[ "$(id -u)" = 0 ] && user_line="user root;"
nginx_head() { # NAME
    cat <<EOF
$user_line
daemon off;
worker_processes 2;
worker_rlimit_nofile 20000;
pid $dir/$1.pid;
error_log $dir/$1.error.log warn;
events { worker_connections 16384; }
EOF
}
up_port=$(free_port)
{
    nginx_head upstream
    cat <<EOF
http {
    access_log $dir/upstream.access.log;
    client_body_temp_path $dir/tmp/upstream-body;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$up_port;
        root $www;
    }
}
EOF
} >"$dir/upstream.conf"

peer_port=$(free_port)
peer_cache_port=$(free_port)
peer_tls_port=$(free_port)
proxy_common="proxy_pass http://store; proxy_http_version 1.1; proxy_set_header Connection \"\";"
{
    nginx_head peer
    cat <<EOF
http {
    access_log $dir/peer.access.log;
    client_body_temp_path $dir/tmp/peer-body;
    proxy_temp_path $dir/tmp/peer-proxy;
    keepalive_requests 1000000;
    upstream store {
        server 127.0.0.1:$up_port;
        # Per worker: 256 idle store connections in all, as s3gate's
        # default pool (pool_max_idle_per_host = 256).
        keepalive 128;
    }
    proxy_cache_path $dir/nginx-cache levels=1:2 keys_zone=media:16m max_size=2g inactive=1h use_temp_path=off;
    server {
        listen 127.0.0.1:$peer_port;
        location / { $proxy_common }
    }
    server {
        listen 127.0.0.1:$peer_cache_port;
        location / {
            $proxy_common
            proxy_cache media;
            proxy_cache_valid 200 206 10m;
            proxy_cache_lock on;
            add_header X-Cache-Status \$upstream_cache_status;
        }
    }
    server {
        listen 127.0.0.1:$peer_tls_port ssl http2;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        location / { $proxy_common }
    }
}
EOF
} >"$dir/peer.conf"

start_nginx() { # NAME
    "$nginx" -p "$dir" -e "$dir/$1.error.log" -c "$dir/$1.conf" &
    pids+=($!)
    wait_for "$dir/$1.pid" .
}
say "starting nginx (upstream store :$up_port, peer :$peer_port, cache :$peer_cache_port, TLS :$peer_tls_port)"
start_nginx upstream
start_nginx peer
up_pid=$(cat "$dir/upstream.pid")
peer_pid=$(cat "$dir/peer.pid")

# --- s3gate -------------------------------------------------------------------
token=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
token_sha=$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)
export S3GATE_BENCH_SECRET=benchsecretbenchsecret0123456789
export AWS_EC2_METADATA_DISABLED=true AWS_ENDPOINT_URL=http://127.0.0.1:9
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
unset S3GATE_LOG
auth="Authorization: Bearer $token"

s3gate_config() { # NAME [cache|tls]
    cat <<EOF
[server]
listen = "127.0.0.1:0"
EOF
    if [ "${2:-}" = tls ]; then
        printf '[server.tls]\ncert_file = "%s"\nkey_file = "%s"\n' "$dir/cert.pem" "$dir/key.pem"
    fi
    cat <<EOF

[s3_api]
anonymous = true

[[clients]]
name = "bench"
token_sha256 = ["$token_sha"]
integrations = ["*"]
EOF
    if [ "${2:-}" = cache ]; then
        printf '\n[cache]\nmemory_mb = 256\nrevalidate_after_s = 600\n'
    fi
    for bucket in bench cached; do
        cat <<EOF

[[integrations]]
name = "$bucket"
bucket = "$bucket"
endpoint_url = "http://127.0.0.1:$up_port"
force_path_style = true
delivery = "redirect"

[integrations.credentials]
access_key_id = "AKIABENCHBENCH000001"
secret_access_key_env = "S3GATE_BENCH_SECRET"
EOF
    done
}

# start_s3gate NAME [cache|tls] [WRAPPER...]: sets port_NAME and pid_NAME.
start_s3gate() {
    local name=$1 mode=${2:-} scheme=http
    shift 2 || shift $#
    [ "$mode" = tls ] && scheme=https
    s3gate_config "$name" "$mode" >"$dir/$name.toml"
    "$@" "$s3gate" serve --config "$dir/$name.toml" >>"$dir/$name.log" 2>&1 &
    pids+=($!)
    printf -v "pid_$name" %s $!
    wait_for "$dir/$name.log" "listening on $scheme://" 300
    printf -v "port_$name" %s "$(strip_ansi "$dir/$name.log" | sed -n "s|.*listening on $scheme://127.0.0.1:\([0-9]*\).*|\1|p" | head -1)"
}
start_trivial() { # NAME BYTES: sets port_NAME and pid_NAME.
    "$trivial_bin" "$2" >"$dir/$1.log" 2>&1 &
    pids+=($!)
    printf -v "pid_$1" %s $!
    wait_for "$dir/$1.log" listening
    printf -v "port_$1" %s "$(sed -n 's/.*127.0.0.1:\([0-9]*\).*/\1/p' "$dir/$1.log")"
}
stop() { # PID
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

say "starting s3gate"
start_s3gate gw
start_s3gate gwcache cache
start_s3gate gwtls tls
want h2 && start_s3gate gwtlsje tls env LD_PRELOAD="$jemalloc"
gw="http://127.0.0.1:$port_gw"

# --- checks and measurements --------------------------------------------------
# check URL STATUS BYTES [curl args...]: one request answers STATUS with BYTES body bytes.
check() {
    local url=$1 status=$2 bytes=$3 got
    shift 3
    got=$(curl -sS -o /dev/null -w '%{http_code} %{size_download}' "$@" "$url")
    [ "$got" = "$status $bytes" ] || die "check of $url: got '$got', wanted '$status $bytes'"
}
body_size() { curl -sS -o /dev/null -w '%{size_download}' "$@"; }

# load NAME CONNECTIONS URL [wrk args...]: sets rps_NAME, p99_NAME, mbs_NAME.
load() {
    local name=$1 conns=$2 url=$3 out rps p99 mbs
    shift 3
    out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "$@" "$url")
    printf '%s\n' "$out" >"$dir/wrk-$name.txt"
    if grep -q 'Non-2xx or 3xx' <<<"$out"; then
        printf '%s\n' "$out" >&2
        die "$name: wrk saw non-2xx/3xx responses"
    fi
    grep -q 'Socket errors' <<<"$out" && say "$name: $(grep 'Socket errors' <<<"$out")"
    rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    mbs=$(awk '/^Transfer\/sec/ {v = $2; u = substr(v, length(v) - 1); n = v + 0;
        if (u == "GB") n *= 1024; else if (u == "KB") n /= 1024; else if (u != "MB") n /= 1048576; print n}' <<<"$out")
    printf -v "rps_$name" %s "$rps"
    printf -v "p99_$name" %s "$p99"
    printf -v "mbs_$name" %s "$mbs"
    say "$name: $rps req/s, p99 $p99"
    record "$name" "$rps" "$(ms "$p99")" "$mbs"
}
# compare CONNECTIONS REF REF_URL S3GATE S3GATE_URL [wrk args...]: loads
# the two in turn, $rounds times, and leaves each one's medians (settle).
compare() {
    local conns=$1 ref=$2 ref_url=$3 gate=$4 gate_url=$5
    shift 5
    for _ in $(seq "$rounds"); do
        load "$ref" "$conns" "$ref_url" "$@"
        load "$gate" "$conns" "$gate_url" "$@"
    done
    settle "$ref" "$gate"
}
# ms LATENCY: wrk's latency (850.00us, 1.46ms, 1.02s) in milliseconds.
ms() {
    awk -v v="$1" 'BEGIN { n = v + 0; u = v; sub(/^[0-9.]+/, "", u);
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000; printf "%.2f", n }'
}
# record NAME RPS P99_MS MBS: one round's figures of NAME ("-" for none).
record() { echo "$2 $3 $4" >>"$dir/rounds-$1"; }
# settle NAME...: sets rps_NAME, p99_NAME (as "1.46ms") and mbs_NAME to the
# medians of NAME's rounds (the lower middle of an even count); says them
# with each round's requests per second.
settle() {
    local name column values median
    for name in "$@"; do
        for column in 1 2 3; do
            values=$(awk -v c="$column" '$c != "-" {print $c}' "$dir/rounds-$name" | sort -g)
            median=$(awk '{v[NR] = $1} END {if (NR) print v[int((NR + 1) / 2)]; else print "-"}' <<<"$values")
            case $column in
                1) printf -v "rps_$name" %s "$median" ;;
                2) [ "$median" = - ] && printf -v "p99_$name" %s - || printf -v "p99_$name" %s "${median}ms" ;;
                3) printf -v "mbs_$name" %s "$median" ;;
            esac
        done
        say "$name: median $(eval echo "\$rps_$name") req/s of rounds $(awk '{printf "%s%.0f", (NR > 1 ? ", " : ""), $1}' "$dir/rounds-$name")"
        rm "$dir/rounds-$name"
    done
}
# Truncate the access logs between scenarios (all are opened for appending).
rotate_logs() { for f in "$dir"/*.access.log "$dir"/gw*.log; do : >"$f"; done; }

# sample_peak PID FILE: writes the highest RSS seen until killed.
sample_peak() {
    local peak=0 now
    while true; do
        now=$(rss_kb "$1")
        [ "$now" -gt "$peak" ] && peak=$now && echo "$peak" >"$2"
        sleep 0.05
    done
}

rows="$dir/rows"
: >"$rows"
# row SCENARIO REFERENCE REF_FIGURE S3GATE_FIGURE [REF_P99 S3GATE_P99]
row() {
    local ratio
    ratio=$(awk -v r="$3" -v g="$4" 'BEGIN { if (r > 0) printf "%.2f×", g / r; else print "-" }')
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$3" "$4" "$ratio" "${5:--}" "${6:--}" >>"$rows"
}
round() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }

# --- 1. GET /v1/presign ----------------------------------------------------------
presign_url="$gw/v1/presign?locator=s3%3A%2F%2Fbench%2Fobj100k"
check "$presign_url" 200 "$(body_size -H "$auth" "$presign_url")" -H "$auth"
presign_bytes=$(body_size -H "$auth" "$presign_url")
curl -sS -H "$auth" "$presign_url" | grep -q '"url":"http://127.0.0.1' || die "presign answered no store URL"
start_trivial trivial "$presign_bytes"
trivial="http://127.0.0.1:$port_trivial"
check "$trivial/v1/presign" 200 "$presign_bytes"
# The checks above and the trivial handler serve every selection (2 and 8 use them).
if want presign; then
say "1. GET /v1/presign ($presign_bytes-byte answer)"
compare 64 t_presign "$trivial/v1/presign?locator=s3%3A%2F%2Fbench%2Fobj100k" g_presign "$presign_url" -H "$auth"
row "GET /v1/presign, c64 (req/s)" "trivial hyper" "$(round "$rps_t_presign")" "$(round "$rps_g_presign")" "$p99_t_presign" "$p99_g_presign"
rotate_logs
fi

# --- 1b. what a team would write instead: FastAPI + boto3 ----------------------------
if want fastapi; then
# benches/fastapi_presign.py under uvicorn, 2 worker processes (one per core,
# as s3gate's tokio runtime has one worker thread per core), signing for the
# same store with the same keys and checking the same token digest. uvicorn's
# access log stays on, its default, as s3gate's does (both write it to a file
# here). --loop uvloop --http httptools are what uvicorn[standard] picks
# anyway: named so that a missing one fails rather than falls back to asyncio
# and h11.
fapi_port=$(free_port)
PRESIGN_STORE_URL="http://127.0.0.1:$up_port" PRESIGN_ACCESS_KEY_ID=AKIABENCHBENCH000001 \
    PRESIGN_SECRET_ACCESS_KEY="$S3GATE_BENCH_SECRET" PRESIGN_BUCKETS="bench cached" PRESIGN_TOKEN_SHA256="$token_sha" \
    "$venv/bin/uvicorn" --app-dir benches fastapi_presign:app --host 127.0.0.1 --port "$fapi_port" \
    --workers 2 --loop uvloop --http httptools >"$dir/fastapi.log" 2>&1 &
pid_fastapi=$!
pids+=("$pid_fastapi")
deadline=$((SECONDS + 60))
until [ "$(grep -c 'Application startup complete' "$dir/fastapi.log")" -ge 2 ]; do
    if ! kill -0 "$pid_fastapi" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
        cat "$dir/fastapi.log" >&2
        die "uvicorn's 2 workers did not start"
    fi
    sleep 0.1
done
# The workers and multiprocessing's resource tracker: the exit trap kills them too.
mapfile -t fapi_children < <(pgrep -P "$pid_fastapi")
pids+=("${fapi_children[@]}")
fapi_url="http://127.0.0.1:$fapi_port/v1/presign?locator=s3%3A%2F%2Fbench%2Fobj100k"
fapi_bytes=$(body_size -H "$auth" "$fapi_url")
check "$fapi_url" 200 "$fapi_bytes" -H "$auth"
curl -sS -H "$auth" "$fapi_url" >"$dir/fastapi-answer.json"
curl -sS -H "$auth" "$presign_url" >"$dir/s3gate-answer.json"
fapi_location=$(python3 -c '
import json, sys
fastapi, s3gate = (json.load(open(p)) for p in sys.argv[1:3])
assert sorted(fastapi) == sorted(s3gate), "fields %s, s3gate has %s" % (sorted(fastapi), sorted(s3gate))
assert fastapi["url"].startswith(sys.argv[3]), "not on the store"
assert "X-Amz-Algorithm=AWS4-HMAC-SHA256&" in fastapi["url"], "not SigV4"
print(fastapi["url"])' "$dir/fastapi-answer.json" "$dir/s3gate-answer.json" "http://127.0.0.1:$up_port/bench/obj100k?") ||
    die "FastAPI's answer is not s3gate's with a URL on the store: $(cat "$dir/fastapi-answer.json")"
check "$fapi_location" 200 102400
for header in "" "Authorization: Bearer not-$token"; do
    status=$(curl -sS -o /dev/null -w '%{http_code}' ${header:+-H "$header"} "$fapi_url")
    [ "$status" = 401 ] || die "FastAPI answered $status to ${header:-no Authorization}, wanted 401"
done
say "1b. GET /v1/presign: FastAPI + boto3, uvicorn 2 workers ($fapi_bytes-byte answer)"
load f_presign 64 "$fapi_url" -H "$auth"
[ -n "${rps_g_presign:-}" ] || load g_presign 64 "$presign_url" -H "$auth"
stop "$pid_fastapi"
for pid in "${fapi_children[@]}"; do
    deadline=$((SECONDS + 10))
    while kill -0 "$pid" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { kill "$pid" 2>/dev/null; die "uvicorn's child $pid outlived it"; }
        sleep 0.1
    done
done
# shellcheck disable=SC2154 # rps_f_presign and p99_f_presign: set by load through printf -v
row "GET /v1/presign, c64 (req/s)" "FastAPI + boto3, uvicorn 2 workers" "$(round "$rps_f_presign")" "$(round "$rps_g_presign")" "$p99_f_presign" "$p99_g_presign"
rotate_logs
fi

# --- 2. /v1/object redirect ---------------------------------------------------------
if want object; then
object_url="$gw/v1/object?locator=s3%3A%2F%2Fbench%2Fobj100k"
check "$object_url" 307 0 -H "$auth"
location=$(curl -sS -o /dev/null -w '%{redirect_url}' -H "$auth" "$object_url")
check "$location" 200 102400
say "2. /v1/object 307"
compare 64 t_object "$trivial/v1/object?locator=s3%3A%2F%2Fbench%2Fobj100k" g_object "$object_url" -H "$auth"
row "/v1/object 307 redirect, c64 (req/s)" "trivial hyper" "$(round "$rps_t_object")" "$(round "$rps_g_object")" "$p99_t_object" "$p99_g_object"
rotate_logs
fi

# --- 3. POST /v1/presign, 1,000 locators -----------------------------------------------
if want batch; then
python3 -c 'import json; print(json.dumps({"locators": ["s3://bench/images/%06d.jpg" % i for i in range(1000)]}))' >"$dir/batch.json"
batch_bytes=$(body_size -H "$auth" -H 'Content-Type: application/json' --data-binary @"$dir/batch.json" "$gw/v1/presign")
check "$gw/v1/presign" 200 "$batch_bytes" -H "$auth" -H 'Content-Type: application/json' --data-binary @"$dir/batch.json"
ok=$(curl -sS -H "$auth" -H 'Content-Type: application/json' --data-binary @"$dir/batch.json" "$gw/v1/presign" |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["results"]; print(sum(1 for x in r if "url" in x))')
[ "$ok" = 1000 ] || die "the batch presigned $ok of 1000 locators"
cat >"$dir/batch.lua" <<EOF
local file = io.open("$dir/batch.json", "r")
wrk.method = "POST"
wrk.body = file:read("*a")
wrk.headers["Content-Type"] = "application/json"
file:close()
EOF
start_trivial trivialbatch "$batch_bytes"
check "http://127.0.0.1:$port_trivialbatch/v1/presign" 200 "$batch_bytes" --data-binary @"$dir/batch.json"
say "3. POST /v1/presign with 1,000 locators ($batch_bytes-byte answer)"
compare 16 t_batch "http://127.0.0.1:$port_trivialbatch/v1/presign" g_batch "$gw/v1/presign" -H "$auth" -s "$dir/batch.lua"
stop "$pid_trivialbatch"
row "POST /v1/presign ×1,000, c16 (locators/s)" "trivial hyper, same bytes" "$(round "$(awk -v r="$rps_t_batch" 'BEGIN {print r * 1000}')")" \
    "$(round "$(awk -v r="$rps_g_batch" 'BEGIN {print r * 1000}')")" "$p99_t_batch" "$p99_g_batch"
rotate_logs
fi

# --- 4. streaming through the S3 front ------------------------------------------------
if want stream; then
check "$gw/bench/obj100k" 200 102400
check "http://127.0.0.1:$peer_port/bench/obj100k" 200 102400
check "$gw/bench/obj10m" 200 10485760
check "http://127.0.0.1:$peer_port/bench/obj10m" 200 10485760
cmp <(curl -sS "$gw/bench/obj100k") "$www/bench/obj100k" || die "the S3 front streamed other bytes"
say "4. streaming 100 KB (c64) and 10 MB (c16)"
compare 64 n_100k "http://127.0.0.1:$peer_port/bench/obj100k" g_100k "$gw/bench/obj100k"
row "S3 front GET 100 KB, c64 (req/s)" "nginx proxy_pass" "$(round "$rps_n_100k")" "$(round "$rps_g_100k")" "$p99_n_100k" "$p99_g_100k"
rotate_logs
sample_peak "$peer_pid" "$dir/peak-nginx" & sampler=$!
pids+=($sampler)
load n_10m 16 "http://127.0.0.1:$peer_port/bench/obj10m"
stop "$sampler"
sample_peak "$pid_gw" "$dir/peak-s3gate" & sampler=$!
pids+=($sampler)
load g_10m 16 "$gw/bench/obj10m"
stop "$sampler"
row "S3 front GET 10 MB, c16 (MB/s)" "nginx proxy_pass" "$(round "$mbs_n_10m")" "$(round "$mbs_g_10m")" "$p99_n_10m" "$p99_g_10m"
peak_nginx=$(cat "$dir/peak-nginx")
peak_s3gate=$(cat "$dir/peak-s3gate")
rotate_logs
fi

# --- 5. media cache hits and a cold crowd ------------------------------------------------
if want cache; then
gwc="http://127.0.0.1:$port_gwcache"
ngc="http://127.0.0.1:$peer_cache_port"
check "$gwc/cached/obj100k" 200 102400
check "$ngc/cached/obj100k" 200 102400
curl -sS -D - -o /dev/null "$gwc/cached/obj100k" | grep -qi '^x-cache-status: HIT' || die "s3gate's cache did not answer HIT"
curl -sS -D - -o /dev/null "$ngc/cached/obj100k" | grep -qi '^x-cache-status: HIT' || die "nginx's cache did not answer HIT"
say "5. cache hits, 100 KB, c64"
compare 64 n_hit "$ngc/cached/obj100k" g_hit "$gwc/cached/obj100k"
row "cache hits 100 KB, c64 (req/s)" "nginx proxy_cache" "$(round "$rps_n_hit")" "$(round "$rps_g_hit")" "$p99_n_hit" "$p99_g_hit"
curl -sS -D - -o /dev/null "$gwc/cached/obj100k" | grep -qi '^x-cache-status: HIT' || die "s3gate's cache stopped answering HIT"
rotate_logs
fi

if want crowd; then
# crowd NAME URL PATH: 64 concurrent GETs of one cold 10 MB object; sets
# crowd_s_NAME (seconds until all finished) and crowd_gets_NAME (upstream GETs).
crowd() {
    local name=$1 url=$2 path=$3 args=() start end bad
    for _ in $(seq 64); do args+=(-o /dev/null "$url"); done
    : >"$dir/upstream.access.log"
    start=$(date +%s.%N)
    curl -sS -Z --parallel-immediate --parallel-max 64 -w '%{http_code} %{size_download}\n' "${args[@]}" >"$dir/crowd.txt" 2>"$dir/crowd.err"
    end=$(date +%s.%N)
    bad=$(grep -vc '^200 10485760$' "$dir/crowd.txt" || true)
    [ "$bad" = 0 ] && [ "$(wc -l <"$dir/crowd.txt")" = 64 ] || die "crowd on $url: $(sort "$dir/crowd.txt" | uniq -c)"
    printf -v "crowd_s_$name" %s "$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')"
    printf -v "crowd_gets_$name" %s "$(grep -c "\"GET $path[ ?]" "$dir/upstream.access.log" || true)"
}
say "5b. 64 clients on a cold 10 MB object"
crowd n "$ngc/cached/crowd-nginx" /cached/crowd-nginx
crowd g "$gwc/cached/crowd-s3gate" /cached/crowd-s3gate
say "crowd: nginx $crowd_s_n s, $crowd_gets_n upstream GETs; s3gate $crowd_s_g s, $crowd_gets_g upstream GETs"
row "cold crowd: 64 clients × one 10 MB object, time to finish (s)" "nginx proxy_cache_lock" "$crowd_s_n" "$crowd_s_g"
row "cold crowd: upstream GETs (s3gate: 10 slices of 1 MiB)" "nginx proxy_cache_lock" "$crowd_gets_n" "$crowd_gets_g"
rotate_logs
fi

# --- 6. HTTP/2 over TLS, 12 KB ------------------------------------------------------
if want h2; then
gwt="https://127.0.0.1:$port_gwtls"
ngt="https://127.0.0.1:$peer_tls_port"
check "$gwt/bench/obj12k" 200 12288 -k --http2
check "$ngt/bench/obj12k" 200 12288 -k --http2
[ "$(curl -sS -k --http2 -o /dev/null -w '%{http_version}' "$gwt/bench/obj12k")" = 2 ] || die "s3gate's TLS listener did not speak HTTP/2"
# h2 NAME URL: sets rps_NAME.
h2() {
    local out
    out=$(h2load -c8 -m32 -D "$secs" "$2")
    printf '%s\n' "$out" >"$dir/h2load-$1.txt"
    grep -Eq 'status codes: [0-9]+ 2xx, 0 3xx, 0 4xx, 0 5xx' <<<"$out" || { printf '%s\n' "$out" >&2; die "$1: h2load saw non-2xx responses"; }
    grep -Eq ' 0 failed, 0 errored, 0 timeout' <<<"$out" || { printf '%s\n' "$out" >&2; die "$1: h2load saw failed requests"; }
    printf -v "rps_$1" %s "$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")"
    say "$1: $(eval echo "\$rps_$1") req/s"
    record "$1" "$(eval echo "\$rps_$1")" - -
}
say "6. HTTP/2 over TLS, 12 KB, h2load -c8 -m32"
check "https://127.0.0.1:$port_gwtlsje/bench/obj12k" 200 12288 -k --http2
for _ in $(seq "$rounds"); do
    h2 n_h2 "$ngt/bench/obj12k"
    h2 g_h2 "$gwt/bench/obj12k"
    h2 j_h2 "https://127.0.0.1:$port_gwtlsje/bench/obj12k"
done
settle n_h2 g_h2 j_h2
row "HTTP/2 + TLS GET 12 KB, h2load -c8 -m32 (req/s)" "nginx ssl http2 proxy_pass" "$(round "$rps_n_h2")" "$(round "$rps_g_h2")"
row "… s3gate with jemalloc preloaded (LD_PRELOAD)" "nginx ssl http2 proxy_pass" "$(round "$rps_n_h2")" "$(round "$rps_j_h2")"
rotate_logs
fi

# --- 7. memory ---------------------------------------------------------------------
if want memory; then
# idle_rss NAME PORT PID: sets idle0_NAME and idle_NAME, the RSS (KiB)
# before and with 5,000 idle keep-alive connections.
idle_rss() {
    local client
    printf -v "idle0_$1" %s "$(rss_kb "$3")"
    python3 benches/load_client.py idle "$2" /bench/obj12k 5000 >"$dir/idle-$1.txt" 2>&1 &
    client=$!
    pids+=($client)
    wait_for "$dir/idle-$1.txt" '^ready 5000' 120
    printf -v "idle_$1" %s "$(settled_rss "$3")"
    stop "$client"
}
# settled_rss PID: the RSS (KiB) once it holds still for half a second (at
# most 10 s): s3gate lets an idle connection's HTTP state go after 10 ms.
settled_rss() {
    local before now deadline=$((SECONDS + 10))
    now=$(rss_kb "$1")
    while [ $SECONDS -lt $deadline ]; do
        before=$now
        sleep 0.5 # sampling interval
        now=$(rss_kb "$1")
        [ "$now" -ne "$before" ] || break
    done
    echo "$now"
}
say "7. memory: 5,000 idle keep-alive connections"
start_s3gate gwidle
start_trivial trivialidle 12288
idle_rss t "$port_trivialidle" "$pid_trivialidle"
idle_rss n "$peer_port" "$peer_pid"
idle_rss g "$port_gwidle" "$pid_gwidle"
stop "$pid_trivialidle"
stop "$pid_gwidle"
mb() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
# Rounded to 0.1 KB; a process that shrank by less than that (nginx's
# workers may) shows 0.0, not -0.0.
per_conn() { awk -v a="$1" -v b="$2" 'BEGIN { v = (b - a) / 5000; if (v > -0.05 && v < 0.05) v = 0; printf "%.1f", v }'; }
row "RSS with 5,000 idle keep-alive conns (MB)" "trivial hyper" "$(mb "$idle_t")" "$(mb "$idle_g")"
row "RSS with 5,000 idle keep-alive conns (MB)" "nginx, master + 2 workers" "$(mb "$idle_n")" "$(mb "$idle_g")"
row "RSS per idle conn (KB)" "trivial hyper" "$(per_conn "$idle0_t" "$idle_t")" "$(per_conn "$idle0_g" "$idle_g")"
row "RSS per idle conn (KB)" "nginx, master + 2 workers" "$(per_conn "$idle0_n" "$idle_n")" "$(per_conn "$idle0_g" "$idle_g")"
[ -z "${peak_nginx:-}" ] || row "peak RSS, 16 clients streaming 10 MB (MB)" "nginx, master + 2 workers" "$(mb "$peak_nginx")" "$(mb "$peak_s3gate")"
rotate_logs
fi

# --- 8. instructions per presign request ---------------------------------------------
if want instructions; then
# instructions NAME N: sets total_NAME_N, callgrind's instruction count of a
# whole run (start, N presign requests on one connection, stop).
instructions() {
    local name=$1 n=$2 pid port out total
    if [ "$name" = s3gate ]; then
        start_s3gate "cg$n" "" valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.$name.$n"
        pid=$(eval echo "\$pid_cg$n")
        port=$(eval echo "\$port_cg$n")
    else
        valgrind --tool=callgrind --callgrind-out-file="$dir/callgrind.$name.$n" "$trivial_bin" "$presign_bytes" \
            >"$dir/cgt$n.log" 2>&1 &
        pid=$!
        pids+=($pid)
        wait_for "$dir/cgt$n.log" listening 300
        port=$(sed -n 's/.*listening 127.0.0.1:\([0-9]*\).*/\1/p' "$dir/cgt$n.log")
    fi
    if [ "$n" -gt 0 ]; then
        out=$(python3 benches/load_client.py sequential "$port" "/v1/presign?locator=s3%3A%2F%2Fbench%2Fobj100k" "$n" "$auth")
        [ "$out" = "done $n" ] || die "callgrind run: $out"
    fi
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null || true
    local file="$dir/callgrind.$name.$n" calibration sha
    total=$(sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$file" | head -1)
    [ -n "$total" ] || die "no callgrind totals for $name"
    # Not counted: the TSC calibration a dependency (fastant, through foyer)
    # runs at start for a span of wall time, whose count varies run to run.
    calibration=$(callgrind_annotate --auto=no --threshold=100 --inclusive=yes "$file" 2>/dev/null | tr -d , |
        awk '/___init___ctor/ && $1 > m {m = $1} END {print m + 0}')
    # SHA-256's block function: valgrind hides SHA-NI, so the portable code
    # runs here, ≈ 10 times the instructions of the native one. --auto=no:
    # the annotated source callgrind_annotate adds otherwise repeats calls
    # with their inclusive counts, which the sum took in a second time
    # (41,701 or 55,556 in two runs of one build; 34,752 without).
    sha=$(callgrind_annotate --auto=no --threshold=100 "$file" 2>/dev/null | tr -d , | awk '/sha2::sha256::compress256/ {s += $1} END {print s + 0}')
    printf -v "total_${name}_$n" %s "$((total - calibration))"
    printf -v "sha_${name}_$n" %s "$sha"
}
say "8. instructions per presign request (callgrind, 2,000 requests minus none)"
n=2000
instructions s3gate 0
instructions s3gate $n
instructions trivial 0
instructions trivial $n
cg_g=$(((total_s3gate_2000 - total_s3gate_0) / n))
cg_t=$(((total_trivial_2000 - total_trivial_0) / n))
sha_g=$(((sha_s3gate_2000 - sha_s3gate_0) / n))
echo "instructions/request: $cg_g (SHA-256 blocks: $sha_g)" >&2
row "instructions per GET /v1/presign (callgrind)" "trivial hyper" "$cg_t" "$cg_g"
row "… of which SHA-256 blocks in portable code (valgrind hides SHA-NI)" "trivial hyper" 0 "$sha_g"
row "… without them" "trivial hyper" "$cg_t" "$((cg_g - sha_g))"
fi

# --- the table ------------------------------------------------------------------
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo
echo "Machine: $(nproc) cores, $cpu; $(uname -r); wrk -t1 -d${secs}s, medians of $rounds rounds; $("$nginx" -v 2>&1 | sed 's/.*: //'); s3gate $(git describe --always --dirty 2>/dev/null || echo '?')"
echo "Presign answer: $presign_bytes bytes; batch answer: ${batch_bytes:--} bytes; ratio = s3gate / reference."
[ -z "${only// /}" ] || echo "Only the scenarios S3GATE_BENCH_ONLY=\"$only\"."
echo
echo "| scenario | reference | reference figure | s3gate figure | ratio | reference p99 | s3gate p99 |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
cat "$rows"
if [ -n "${cg_g:-}" ]; then
    echo
    echo "instructions/request: ${cg_g:-?}"
fi
