# shellcheck shell=bash
# Shared pieces of the bench scripts (benches/load.sh, benches/soak.sh), sourced
# after `cd` to the repository root. Set `prog` (the script's name) first.
# Defines die, say, free_port, wait_for, strip_ansi, rss_kb, open_fds, and
# bench_dir, which makes the scratch folder $dir and the exit trap that kills
# every process in $pids and removes $dir (kept when S3GATE_BENCH_KEEP is set).

die() { printf '%s: %s\n' "${prog:-benches}" "$*" >&2; exit 1; }
say() { printf '== %s\n' "$*" >&2; }

# bench_dir: creates $dir (world-readable, for nginx workers) and the trap.
bench_dir() {
    dir=$(mktemp -d)
    chmod 755 "$dir"
    pids=()
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}
bench_cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [ -n "${S3GATE_BENCH_KEEP:-}" ]; then echo "kept $dir" >&2; else rm -rf "$dir"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# wait_for FILE PATTERN [SECONDS]: until PATTERN shows up in FILE (default 60 s).
wait_for() {
    local deadline=$((SECONDS + ${3:-60}))
    until grep -q "$2" "$1" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || { cat "$1" >&2; die "timed out waiting for '$2' in $1"; }
        sleep 0.05
    done
}
strip_ansi() { sed 's/\x1b\[[0-9;]*m//g' "$1"; }

# RSS in KiB of a process and its children (nginx: master and workers).
rss_kb() {
    local total=0 pid kb
    for pid in "$1" $(pgrep -P "$1" || true); do
        kb=$(awk '/^VmRSS:/ {print $2}' /proc/"$pid"/status 2>/dev/null || echo 0)
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}
# Open file descriptors of a process.
open_fds() { find /proc/"$1"/fd -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
