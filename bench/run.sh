#!/usr/bin/env bash
# bench/run.sh: jwtgate against its baselines, all measured in one run.
#
#   bench/run.sh           # full: 3 interleaved rounds of 10 s per row (about 7 minutes on
#                          # a quiet machine, plus a minute the first time to mint tokens);
#                          # writes bench/results.md (the old one to results-previous.md)
#   QUICK=1 bench/run.sh   # quick: 1 round of 3 s per row (about 2 minutes);
#                          # writes bench/results-quick.md, compared with bench/results.md
#   STOCK_ONLY=1 bench/run.sh  # the HTTP layer only: rows 1, 9 and 2 (patched hello, stock
#                          # hello, jwtgate cache hit), 3 rounds of 5 s (under 2 minutes);
#                          # replaces its own section at the end of bench/results.md
#
# Settings (environment; defaults under "Settings" below): DURATION (s per
# sample), ROUNDS, CONNECTIONS and THREADS (wrk), WARMUP (s, first round
# only), POOL (distinct tokens of row 3), START_RUNS (start-to-ready
# samples), QUIET_WAIT and QUIET_MAX (waiting for a quiet machine, below),
# BASE_PORT (uses BASE_PORT+1 to +12 on 127.0.0.1), RESULTS (the markdown
# file written), NGINX (the binary), BENCH_NICE (e.g. -20, as root: run the
# bench and everything it starts at that priority, and its session's
# autogroup too, so that other work on a shared machine, say a fuzzer,
# takes less CPU from the samples; the "other load" column shows what it
# still took).
#
# Needs: cargo, wrk (Debian's), nginx with auth_request, node >= 20 and npm
# (for bench/node, installed with `npm ci` from its lock file), openssl.
#
# What it does: builds the release binaries (jwtgate, examples/hello,
# examples/mint_tokens), mints a pool of valid RS256 tokens (kept in
# target/bench/tokens for a day), starts every server once (row 3 gets a
# fresh jwtgate each round, so that its cache starts empty), then runs wrk
# against each row in turn, ROUNDS times (interleaved: 1..8, 1..8, ...).
# Rows:
#   1 hello        examples/hello.rs, may_minihttp with jwtgate's worker setup: the ceiling
#   2 jwtgate      direct, one token repeated (token-cache hits)
#   3 jwtgate-pool direct, POOL distinct tokens, each sent once (every request a miss:
#                  a full RS256 verify), fresh daemon each round
#   4 nginx+jwtgate        nginx auth_request -> jwtgate, the repo's nginx/ snippets
#   5 nginx+cache+jwtgate  the same with nginx/jwtgate-cache.conf (decisions cached in nginx)
#   6 nginx+hello          nginx auth_request -> hello (the ceiling of row 4)
#   7 nginx static         the same static page without auth (the ceiling of row 5)
#   8 node                 Clerk's @clerk/backend verifyToken (jwtKey) behind node:http
#   9 stock hello          bench/stock-hello: examples/hello.rs as it was, on stock
#                          may_minihttp 0.1.11 from crates.io (row 1 uses the patched copy
#                          in vendor/may_minihttp): what the HTTP layer's patches cost
# Browser sign-in (Clerk's handshake), after the rows above, jwtgate direct, 1 round:
#   B1 cookie hit, browser off   a signed-in browser's page load (the __session cookie,
#                                navigation headers as nginx sends them) to row 2's jwtgate
#   B2 cookie hit, browser on    the same to a jwtgate with [browser] on: Clerk's decision
#                                on every request
#   B3 handshake redirect        a page load with __client_uat only (back from sign-in,
#                                or the cookie expired): 401 + X-Jwtgate-Location to Clerk
#   B4 return leg                back from Clerk with ?__clerk_handshake_nonce: the nonce
#                                exchanged with a stand-in Backend API on loopback
#                                (bench/node/fake-bapi.mjs), the payload's new session
#                                token verified (RS256, a cache miss, as for real), 401 +
#                                X-Jwtgate-Location to the clean URL;
#                                HS_CONNECTIONS (2) connections, one per exchange thread
# One handshake round costs jwtgate B3 + B4 (two requests; Clerk's Frontend API answers
# the one in between). CPU is jwtgate's alone (the stand-in's is shown apart).
# BASELINE=<git revision> adds two rows, built from that revision (git archive, its own
# target directory under target/bench), to compare a change with what it replaced in the
# same run: 11 (row 2 against it) and 12 (row 3 against it; not with STOCK_ONLY=1).
# HANDSHAKE_ONLY=1: only these rows (with QUICK=1: a quick look), printed and written to
# $WORK/handshake.md; RESULTS is not touched.
# Per row: requests/s, p50 and p99 latency (wrk), server CPU per request
# (utime+stime from /proc/<pid>/stat of the row's server processes, nginx
# master and workers plus its auth server, over the sample, divided by the
# requests), and peak RSS (VmHWM, summed over those processes). Medians of
# the rounds. Then: start-to-ready time (exec to /readyz 200) with a PEM
# key, one RS256 verify (`openssl speed`), the bars, and the ratios to the
# previous results (RESULTS is moved to *-previous.md before it is written).
#
# Every process it starts is stopped on exit (trap), also on Ctrl-C.

set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- Settings ---------------------------------------------------------------
QUICK=${QUICK:-0}
STOCK_ONLY=${STOCK_ONLY:-0}
if [[ $STOCK_ONLY == 1 ]]; then
    DURATION=${DURATION:-5} ROUNDS=${ROUNDS:-3} WARMUP=${WARMUP:-1}
    POOL=${POOL:-2} CACHE_TOKENS=${CACHE_TOKENS:-100000} # row 2 only: two tokens suffice
    QUIET_WAIT=${QUIET_WAIT:-5}
    RESULTS=${RESULTS:-$REPO/bench/results.md}
elif [[ $QUICK == 1 ]]; then
    DURATION=${DURATION:-3} ROUNDS=${ROUNDS:-1} WARMUP=${WARMUP:-1} START_RUNS=${START_RUNS:-5}
    QUIET_WAIT=${QUIET_WAIT:-5}
    RESULTS=${RESULTS:-$REPO/bench/results-quick.md}
else
    DURATION=${DURATION:-10} ROUNDS=${ROUNDS:-3} WARMUP=${WARMUP:-2} START_RUNS=${START_RUNS:-11}
    QUIET_WAIT=${QUIET_WAIT:-60}
    RESULTS=${RESULTS:-$REPO/bench/results.md}
fi
THREADS=${THREADS:-1}
CONNECTIONS=${CONNECTIONS:-64}
POOL=${POOL:-100000}
BASE_PORT=${BASE_PORT:-17100}
NGINX=${NGINX:-nginx}
# The machine may be shared: before each sample wait (QUIET_WAIT s at most)
# until less than QUIET_MAX of all CPU time is in use by anything.
QUIET_MAX=${QUIET_MAX:-0.10}
BENCH_NICE=${BENCH_NICE:-}
WORK=$REPO/target/bench                  # scratch: tokens, configs, logs
ISSUER=https://clerk.bench.jwtgate.invalid
AZP=https://app.bench.jwtgate.invalid
# The bars of the issue, checked at the end.
BAR_HELLO_RATIO=0.95 BAR_HELLO_P99_MS=0.5 BAR_VERIFY_PLUS_US=5 BAR_NGINX_RATIO=0.95
BAR_CACHE_RATIO=0.7 BAR_NODE_RATIO=12 BAR_RSS_MIB=64 BAR_READY_MS=50
BAR_STOCK_RATIO=0.95 # (2)/(9): a cache hit against the stock may_minihttp hello (issue 9)
BAR_BASELINE_RATIO=0.95 BAR_BASELINE_COST=1.05 # "no regression" against BASELINE (issue 7)

PORT_HELLO=$((BASE_PORT + 1)) PORT_JWTGATE=$((BASE_PORT + 2)) PORT_POOL=$((BASE_PORT + 3))
PORT_NGINX_AUTH=$((BASE_PORT + 4)) PORT_NGINX_CACHE=$((BASE_PORT + 5))
PORT_NGINX_HELLO=$((BASE_PORT + 6)) PORT_NGINX_STATIC=$((BASE_PORT + 7))
PORT_NODE=$((BASE_PORT + 8)) PORT_START=$((BASE_PORT + 9)) PORT_STOCK=$((BASE_PORT + 10))
PORT_BROWSER=$((BASE_PORT + 11)) PORT_BAPI=$((BASE_PORT + 12))
HANDSHAKE_ONLY=${HANDSHAKE_ONLY:-0}
BASELINE=${BASELINE:-}
PORT_BASELINE=$((BASE_PORT + 13)) PORT_BASELINE_POOL=$((BASE_PORT + 14))
HS_CONNECTIONS=${HS_CONNECTIONS:-2}

ROW_NAMES=(""
    "hello, patched may_minihttp (ceiling)"
    "jwtgate direct, 1 token (cache hit)"
    "jwtgate direct, $POOL tokens (miss)"
    "nginx auth_request -> jwtgate"
    "nginx + decision cache -> jwtgate"
    "nginx auth_request -> hello"
    "nginx static, no auth"
    "node @clerk/backend verifyToken"
    "hello on stock may_minihttp 0.1.11"
    "jwtgate direct, 1 token, 3 location rules (cache hit)"
    "row 2 on jwtgate at BASELINE ${BASELINE:0:12}"
    "row 3 on jwtgate at BASELINE ${BASELINE:0:12}"
)
# The rows measured, in order.
if [[ $STOCK_ONLY == 1 ]]; then ROWS=(1 9 2); else ROWS=(1 2 3 4 5 6 7 8 9 10); fi
if [[ -n $BASELINE && $STOCK_ONLY == 1 ]]; then ROWS+=(11); elif [[ -n $BASELINE ]]; then ROWS+=(11 12); fi

JWTGATE=$REPO/target/release/jwtgate
BASELINE_JWTGATE=$WORK/baseline/target/release/jwtgate
HELLO=$REPO/target/release/examples/hello
STOCK_HELLO=$REPO/target/stock-hello/release/stock-hello
MINT=$REPO/target/release/examples/mint_tokens
TOKENS=$WORK/tokens
[[ $STOCK_ONLY != 1 ]] || TOKENS=$WORK/tokens-stock # its own small pool
SAMPLES=$WORK/samples.tsv  # row round rps p50_us p99_us cpu_us requests errors other_load
RSS=$WORK/rss.tsv                        # row round total_kb breakdown
CLK_TCK=$(getconf CLK_TCK)

# --- Processes --------------------------------------------------------------
declare -A PID=()                        # name -> pid of every server started
CACHE_DIR=""
AUTOGROUP_NICE=""                        # the session's autogroup nice before BENCH_NICE

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# start NAME COMMAND...: runs COMMAND in the background, logs to $WORK/logs/NAME.log.
start() {
    local name=$1
    shift
    "$@" </dev/null >"$WORK/logs/$name.log" 2>&1 &
    PID[$name]=$!
}

# stop NAME: SIGTERM (nginx's master then stops its workers), SIGKILL after 5 s.
stop() {
    local name=$1 pid=${PID[$1]:-}
    [[ -n $pid ]] || return 0
    unset "PID[$name]"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$pid" 2>/dev/null || break
        nap 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local name
    for name in "${!PID[@]}"; do stop "$name"; done
    [[ -z $CACHE_DIR ]] || rm -rf "$CACHE_DIR"
    [[ -z $AUTOGROUP_NICE ]] || echo "$AUTOGROUP_NICE" >/proc/$$/autogroup || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The pids whose CPU and memory count for server NAME: the process and its
# children (nginx's workers, cache manager and loader).
pids_of() {
    local pid=${PID[$1]}
    echo "$pid"
    ps -o pid= --ppid "$pid" 2>/dev/null | tr -d ' ' || true
}

# Sum of utime+stime, in clock ticks, of the given pids.
cpu_ticks() {
    local pid stat sum=0 fields
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        read -ra fields <<<"${stat##*) }"   # fields[0] is field 3 (state)
        sum=$((sum + fields[11] + fields[12]))
    done
    echo "$sum"
}

# VmHWM (peak RSS) of one pid, in kB.
peak_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# --- A tiny HTTP client: bash's /dev/tcp, no fork per request ------------------
# http PORT PATH [HEADER]: prints the response head (status line and headers).
http() {
    local fd line
    { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET %s HTTP/1.1\r\nHost: bench\r\n%sConnection: close\r\n\r\n' \
        "$2" "${3:+$3$'\r\n'}" >&"$fd"
    while IFS= read -r -t 5 -u "$fd" line && [[ $line != $'\r' ]]; do
        printf '%s\n' "${line%$'\r'}"
    done
    exec {fd}>&-
}

# http_body PORT PATH: the body of a Content-Length response (may_minihttp
# keeps the connection open whatever the request says, so no reading to EOF).
http_body() {
    local fd line length=0 body=""
    { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' "$2" >&"$fd"
    while IFS= read -r -t 5 -u "$fd" line && [[ $line != $'\r' ]]; do
        [[ ${line,,} != content-length:* ]] || length=${line//[^0-9]/}
    done
    ((length == 0)) || LC_ALL=C IFS= read -r -d '' -t 5 -N "$length" -u "$fd" body || true
    exec {fd}>&-
    printf '%s' "$body"
}

# is_200 PORT PATH: true when PATH answers 200 (no subshell: used to time starts).
is_200() {
    local fd line=""
    { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET %s HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n' "$2" >&"$fd"
    IFS= read -r -t 5 -u "$fd" line || true
    exec {fd}>&-
    [[ $line == "HTTP/1.1 200 "* ]]
}

# is_listening PORT
is_listening() {
    local fd
    { exec {fd}<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    exec {fd}>&-
}

# nap SECONDS: sleep without forking (a read that times out on a silent pipe).
exec {NAP_FD}<> <(:)
nap() { read -r -t "$1" -u "$NAP_FD" _ || true; }

# wait_until SECONDS COMMAND...: polls COMMAND every millisecond.
wait_until() {
    local limit=$((${EPOCHREALTIME//[.,]/} + $1 * 1000000))
    shift
    until "$@"; do
        ((${EPOCHREALTIME//[.,]/} < limit)) || return 1
        nap 0.001
    done
}

calc() { awk "BEGIN { CONVFMT = \"%.10g\"; printf \"%s\", ($1) }"; }

# expect PORT PATH HEADER STATUS [LINE]: the answer has STATUS (and LINE).
expect() {
    local head
    head=$(http "$1" "$2" "$3") || die "127.0.0.1:$1$2: no answer"
    [[ $head == "HTTP/1.1 $4 "* ]] || die "127.0.0.1:$1$2 ${3:0:40}...: expected $4, got: ${head%%$'\n'*}"
    [[ -z ${5:-} || $head == *"$5"* ]] || die "127.0.0.1:$1$2: expected '$5' in: $head"
}

# --- Setup ------------------------------------------------------------------
check_tools() {
    local tool port tools=(cargo wrk "$NGINX" node npm openssl git)
    [[ $STOCK_ONLY != 1 ]] || tools=(cargo wrk openssl git)
    for tool in "${tools[@]}"; do
        command -v "$tool" >/dev/null || die "$tool is required (see the header of $0)"
    done
    [[ $STOCK_ONLY == 1 ]] || "$NGINX" -V 2>&1 | grep -q -- --with-http_auth_request_module ||
        die "$NGINX lacks the auth_request module"
    for port in $(seq $((BASE_PORT + 1)) $((BASE_PORT + 12))); do
        ! is_listening "$port" || die "port $port is in use (set BASE_PORT)"
    done
    mkdir -p "$WORK/logs"
}

build() {
    log "building release binaries"
    (cd "$REPO" && cargo build --release --quiet --bin jwtgate --example hello --example mint_tokens)
    # Its own workspace and lock (stock may_minihttp from crates.io), the
    # root's release profile, and a target directory of its own.
    CARGO_TARGET_DIR=$REPO/target/stock-hello cargo build --release --quiet --locked \
        --manifest-path "$REPO/bench/stock-hello/Cargo.toml"
    if [[ -n $BASELINE ]]; then
        local rev
        rev=$(git -C "$REPO" rev-parse --verify --quiet "$BASELINE^{commit}") || die "BASELINE=$BASELINE is no commit"
        log "building jwtgate at BASELINE $rev"
        rm -rf "$WORK/baseline/src" && mkdir -p "$WORK/baseline/src"
        git -C "$REPO" archive "$rev" | tar -x -C "$WORK/baseline/src"
        CARGO_TARGET_DIR=$WORK/baseline/target cargo build --release --quiet --locked \
            --manifest-path "$WORK/baseline/src/Cargo.toml" --bin jwtgate
    fi
    if [[ $STOCK_ONLY != 1 && ! -d $REPO/bench/node/node_modules ]]; then
        log "installing the node peer (npm ci)"
        (cd "$REPO/bench/node" && npm ci --no-audit --no-fund --loglevel=error)
    fi
}

# The token pool (POOL tokens, valid 7 days) and its key, minted once a day.
mint_tokens() {
    mkdir -p "$TOKENS"
    if [[ -n $(find "$TOKENS/pool.txt" -mmin -1440 2>/dev/null) ]] &&
        (($(wc -l <"$TOKENS/pool.txt") == POOL)); then
        log "reusing the $POOL tokens in $TOKENS"
    else
        log "minting $POOL tokens (kept for a day)"
        "$MINT" --count "$POOL" --out "$TOKENS/pool.txt" --public-key "$TOKENS/jwt.pem" \
            --private-key "$TOKENS/signing.pem" --issuer "$ISSUER" --azp "$AZP"
    fi
    HOT_TOKEN=$(head -n 1 "$TOKENS/pool.txt")
    OTHER_TOKEN=$(sed -n 2p "$TOKENS/pool.txt")
    AUTH="Authorization: Bearer $HOT_TOKEN"
}

# jwtgate_config PORT: the PEM key, issuer, azp, a cache of POOL tokens.
jwtgate_config() {
    cat >"$WORK/jwtgate-$1.toml" <<TOML
listen = "127.0.0.1:$1"
workers = 0
pin_workers = false
[keys]
jwt_key_file = "$TOKENS/jwt.pem"
[verify]
issuer = "$ISSUER"
authorized_parties = ["$AZP"]
[cache]
tokens = ${CACHE_TOKENS:-$POOL}
TOML
    echo "$WORK/jwtgate-$1.toml"
}

start_jwtgate() { # NAME PORT [BINARY]
    start "$1" "${3:-$JWTGATE}" --config "$(jwtgate_config "$2")"
    wait_until 10 is_200 "$2" /readyz || die "jwtgate on port $2 never ready: $(<"$WORK/logs/$1.log")"
}

# replace_once TEXT FROM TO WHAT: TEXT with its one FROM replaced; dies
# unless FROM occurs exactly once, so that a change in nginx/ cannot
# silently make the bench run something else.
replace_once() {
    local rest=${1#*"$2"}
    [[ $rest != "$1" ]] || die "expected '$2' in $4, found none"
    [[ $rest != *"$2"* ]] || die "expected '$2' once in $4, found more"
    printf '%s' "${1/"$2"/"$3"}"
}

# start_nginx NAME PORT AUTH_PORT MODE: bench/nginx/bench-site.conf with the
# repo's snippets from nginx/. MODE: auth, cache (with jwtgate-cache.conf),
# or static (no auth_request).
start_nginx() {
    local name=$1 port=$2 auth_port=$3 mode=$4
    local dir=$WORK/$name site text protect="" extra=""
    rm -rf "$dir" && mkdir -p "$dir/jwtgate" "$dir/temp" "$dir/www"
    printf '<!doctype html>\n<title>jwtgate bench</title>\n<p>A static page.</p>\n' >"$dir/www/index.html"

    [[ $mode == static ]] || protect="include jwtgate/jwtgate-protect.conf;
            add_header X-Bench-User \$jwtgate_user_id always;"
    [[ $mode != cache ]] || extra="include jwtgate/jwtgate-cache-zone.conf;"
    site=$(grep -v '^ *#' "$REPO/bench/nginx/bench-site.conf") # the comments name the placeholders
    site=${site//@PREFIX@/$dir}
    site=$(replace_once "$site" @LISTEN@ "127.0.0.1:$port" bench/nginx/bench-site.conf)
    site=$(replace_once "$site" @PROTECT@ "$protect" bench/nginx/bench-site.conf)
    site=$(replace_once "$site" @HTTP_EXTRA@ "$extra" bench/nginx/bench-site.conf)
    printf '%s\n' "$site" >"$dir/nginx.conf"

    text=$(<"$REPO/nginx/jwtgate-upstream.conf")
    text=$(replace_once "$text" "server 127.0.0.1:7070;" "server 127.0.0.1:$auth_port;" \
        nginx/jwtgate-upstream.conf)
    printf '%s\n' "$text" >"$dir/jwtgate/jwtgate-upstream.conf"
    cp "$REPO/nginx/jwtgate-protect.conf" "$REPO/nginx/jwtgate-identity.conf" \
        "$REPO/nginx/jwtgate-auth.conf" "$dir/jwtgate/"
    text=$(<"$REPO/nginx/jwtgate-auth-location.conf")
    if [[ $mode == cache ]]; then
        # As nginx/jwtgate-cache.conf says: in place of `proxy_cache off;`.
        text=$(replace_once "$text" "proxy_cache off;" "include jwtgate/jwtgate-cache.conf;" \
            nginx/jwtgate-auth-location.conf)
        cp "$REPO/nginx/jwtgate-cache.conf" "$dir/jwtgate/"
        # The zone on tmpfs, like the shipped /run path.
        CACHE_DIR=$(mktemp -d /dev/shm/jwtgate-bench-cache.XXXXXX 2>/dev/null || mktemp -d)
        chmod 755 "$CACHE_DIR" # nginx run as root has its workers run as nobody
        local zone
        zone=$(<"$REPO/nginx/jwtgate-cache-zone.conf")
        zone=$(replace_once "$zone" /run/nginx-jwtgate-cache "$CACHE_DIR/zone" \
            nginx/jwtgate-cache-zone.conf)
        printf '%s\n' "$zone" >"$dir/jwtgate/jwtgate-cache-zone.conf"
    fi
    printf '%s\n' "$text" >"$dir/jwtgate/jwtgate-auth-location.conf"

    local run=("$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log")
    "${run[@]}" -t -q 2>"$WORK/logs/$name-t.log" || die "nginx -t ($name): $(<"$WORK/logs/$name-t.log")"
    start "$name" "${run[@]}" -g 'daemon off;'
    wait_until 10 is_listening "$port" || die "$name never listened: $(<"$WORK/logs/$name.log")"
}

start_servers() {
    log "starting the servers"
    start hello "$HELLO" "127.0.0.1:$PORT_HELLO"
    wait_until 10 is_200 "$PORT_HELLO" / || die "hello never answered"
    start stock-hello "$STOCK_HELLO" "127.0.0.1:$PORT_STOCK"
    wait_until 10 is_200 "$PORT_STOCK" / || die "stock hello never answered"
    start_jwtgate jwtgate "$PORT_JWTGATE"
    [[ -z $BASELINE ]] || start_jwtgate jwtgate-baseline "$PORT_BASELINE" "$BASELINE_JWTGATE"
    [[ $STOCK_ONLY != 1 ]] || return 0
    start_nginx nginx-auth "$PORT_NGINX_AUTH" "$PORT_JWTGATE" auth
    start_nginx nginx-cache "$PORT_NGINX_CACHE" "$PORT_JWTGATE" cache
    start_nginx nginx-hello "$PORT_NGINX_HELLO" "$PORT_HELLO" auth
    start_nginx nginx-static "$PORT_NGINX_STATIC" "$PORT_JWTGATE" static
    start node env PORT="$PORT_NODE" JWT_KEY_FILE="$TOKENS/jwt.pem" ISSUER="$ISSUER" AZP="$AZP" \
        node "$REPO/bench/node/server.mjs"
    wait_until 10 is_200 "$PORT_NODE" /readyz || die "node never ready: $(<"$WORK/logs/node.log")"
}

# Each row answers what it should before anything is measured.
check_servers() {
    local other="Authorization: Bearer $OTHER_TOKEN" page=/index.html
    expect "$PORT_HELLO" /auth "$AUTH" 200 "X-User-Id: user_hello"
    expect "$PORT_STOCK" /auth "$AUTH" 200 "X-User-Id: user_hello"
    expect "$PORT_JWTGATE" /auth "$AUTH" 200 "X-User-Id: user_00000000"
    expect "$PORT_JWTGATE" /auth "" 401
    [[ -z $BASELINE ]] || expect "$PORT_BASELINE" /auth "$AUTH" 200 "X-User-Id: user_00000000"
    expect "$PORT_JWTGATE" "/auth?role=org:admin&permission=org:dashboard:manage&org=required" "$AUTH" 200 "X-Org-Role: org:admin"
    if [[ $STOCK_ONLY == 1 ]]; then
        log "every server answers as expected"
        return 0
    fi
    expect "$PORT_NGINX_AUTH" $page "$AUTH" 200 "X-Bench-User: user_00000000"
    expect "$PORT_NGINX_AUTH" $page "" 401
    expect "$PORT_NGINX_CACHE" $page "$AUTH" 200 "X-Bench-User: user_00000000"
    expect "$PORT_NGINX_CACHE" $page "$AUTH" 200 "X-Bench-User: user_00000000"
    expect "$PORT_NGINX_CACHE" $page "$other" 200 "X-Bench-User: user_00000001"
    expect "$PORT_NGINX_CACHE" $page "" 401
    expect "$PORT_NGINX_HELLO" $page "$AUTH" 200 "X-Bench-User: user_hello"
    expect "$PORT_NGINX_STATIC" $page "" 200
    expect "$PORT_NODE" /auth "$AUTH" 200 "X-User-Id: user_00000000"
    expect "$PORT_NODE" /auth "" 401
    log "every server answers as expected"
}

# --- Measuring ----------------------------------------------------------------
# The machine's busy CPU time so far (all CPUs, clock ticks; /proc/stat).
machine_busy_ticks() {
    local cpu user nice system idle iowait irq softirq steal
    read -r cpu user nice system idle iowait irq softirq steal _ </proc/stat
    echo $((user + nice + system + irq + softirq + steal))
}

# children_ticks FILE: the CPU time of this shell's finished children
# (wrk), in clock ticks, from the output of the `times` builtin in FILE.
children_ticks() {
    local line
    line=$(tail -n 1 "$1") # "XmY.YYYs XmY.YYYs": user, system
    awk -v t="$CLK_TCK" '{ s = 0; for (i = 1; i <= 2; i++) { split($i, p, /[ms]/); s += p[1] * 60 + p[2] } printf "%d", s * t }' <<<"$line"
}

# wait_quiet: before a sample, wait until the machine is quiet (see QUIET_MAX).
wait_quiet() {
    local deadline=$((SECONDS + QUIET_WAIT)) busy said=""
    while :; do
        busy=$(busy_share 0.5)
        (($(calc "$busy > $QUIET_MAX"))) || return 0
        if ((SECONDS >= deadline)); then
            log "the machine is still busy ($(calc "$busy * 100" | xargs printf '%.0f')% of all CPU) after ${QUIET_WAIT} s; measuring anyway"
            return 0
        fi
        [[ -n $said ]] || log "waiting for a quiet machine (busy: $(calc "$busy * 100" | xargs printf '%.0f')% of all CPU)"
        said=1
        nap 1
    done
}

# busy_share SECONDS: the share of all CPU time in use over SECONDS.
busy_share() {
    local cpu a b c d e f g h t0 i0 t1 i1
    read -r cpu a b c d e f g h _ </proc/stat
    t0=$((a + b + c + d + e + f + g + h)) i0=$((d + e))
    nap "$1"
    read -r cpu a b c d e f g h _ </proc/stat
    t1=$((a + b + c + d + e + f + g + h)) i1=$((d + e))
    calc "1 - ($i1 - $i0) / ($t1 - $t0 + 1)"
}

# wrk_run URL [VAR=VALUE...]: one wrk run; sets REQUESTS DURATION_US P50_US
# P99_US ERRORS NON2XX from the RESULT line of bench/wrk.lua.
wrk_run() {
    local url=$1 out line
    shift
    WRK_SECONDS_RUN=${WRK_SECONDS:-$DURATION}
    out=$(env WRK_THREADS="$THREADS" "$@" wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WRK_SECONDS_RUN}s" --timeout 5s \
        -s "$REPO/bench/wrk.lua" -H "$AUTH" "$url") || die "wrk failed on $url: $out"
    line=$(grep '^RESULT ' <<<"$out") || die "no RESULT from wrk on $url: $out"
    # Sets REQUESTS DURATION_US P50_US P99_US ERRORS NON2XX.
    eval "$(sed -E 's/^RESULT //; s/([a-z0-9_]+)=/\U\1=/g' <<<"$line")"
}

warm_up() { WRK_SECONDS=$WARMUP wrk_run "$@" >/dev/null; }

# measure ROW ROUND URL "SERVERS" [VAR=VALUE...]: one sample of a row; the
# CPU of the SERVERS (names given to `start`) over the run, per request.
measure() {
    local row=$1 round=$2 url=$3 name pids=()
    shift 3
    for name in $1; do mapfile -t -O "${#pids[@]}" pids < <(pids_of "$name"); done
    shift
    wait_quiet
    local before after machine_before machine_after wrk_before wrk_after
    machine_before=$(machine_busy_ticks)
    times >"$WORK/times-before" # no $(...): a subshell's `times` starts from 0
    before=$(cpu_ticks "${pids[@]}")
    wrk_run "$url" "$@"
    after=$(cpu_ticks "${pids[@]}")
    times >"$WORK/times-after"
    wrk_before=$(children_ticks "$WORK/times-before")
    wrk_after=$(children_ticks "$WORK/times-after")
    machine_after=$(machine_busy_ticks)
    ((NON2XX == 0)) || die "row $row: $NON2XX answers were not 2xx/3xx (logs: $WORK/logs)"
    ((REQUESTS > 0)) || die "row $row: no requests completed"
    local rps cpu other
    rps=$(calc "$REQUESTS * 1000000 / $DURATION_US")
    cpu=$(calc "($after - $before) * 1000000 / $CLK_TCK / $REQUESTS")
    # CPU used on the machine by neither the servers nor wrk, as a share of
    # all CPUs over the sample: how much else was running (noise).
    other=$(calc "(($machine_after - $machine_before) - ($after - $before) - ($wrk_after - $wrk_before)) \
        / ($WRK_SECONDS_RUN * $CLK_TCK * $(nproc))")
    other=$(calc "$other < 0 ? 0 : $other")
    printf '%s\t%s\t%.0f\t%s\t%s\t%.2f\t%s\t%s\t%.2f\n' "$row" "$round" "$rps" "$P50_US" "$P99_US" \
        "$cpu" "$REQUESTS" "$ERRORS" "$other" >>"$SAMPLES"
    log "$(printf 'row %s round %s: %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms  %6.2f us CPU/req  other load %3.0f%%%s' \
        "$row" "$round" "$rps" "$(calc "$P50_US / 1000")" "$(calc "$P99_US / 1000")" "$cpu" \
        "$(calc "$other * 100")" "$( ((ERRORS == 0)) || echo "  ($ERRORS socket errors)")")"
}

# record_rss ROW ROUND "SERVERS": the peak RSS of the row's processes, with a
# breakdown per server.
record_rss() {
    local row=$1 round=$2 name pid total=0 kb parts=()
    for name in $3; do
        kb=0
        for pid in $(pids_of "$name"); do kb=$((kb + $(peak_kb "$pid"))); done
        total=$((total + kb))
        parts+=("$name $(calc "$kb / 1024" | xargs printf '%.1f')")
    done
    local IFS=+
    printf '%s\t%s\t%s\t%s\n' "$row" "$round" "$total" "${parts[*]}" >>"$RSS"
}

# jwtgate's cache counters from /metrics: "HITS MISSES" ("?" if absent).
cache_counts() {
    local text hit miss
    text=$(http_body "$1" /metrics) || die "no /metrics on port $1"
    hit=$(grep -oP 'jwtgate_token_cache_total\{result="hit"\} \K[0-9]+' <<<"$text" || echo "?")
    miss=$(grep -oP 'jwtgate_token_cache_total\{result="miss"\} \K[0-9]+' <<<"$text" || echo "?")
    echo "$hit $miss"
}

URL_HELLO=http://127.0.0.1:$PORT_HELLO/auth
URL_JWTGATE=http://127.0.0.1:$PORT_JWTGATE/auth
URL_POOL=http://127.0.0.1:$PORT_POOL/auth
URL_NGINX_AUTH=http://127.0.0.1:$PORT_NGINX_AUTH/index.html
URL_NGINX_CACHE=http://127.0.0.1:$PORT_NGINX_CACHE/index.html
URL_NGINX_HELLO=http://127.0.0.1:$PORT_NGINX_HELLO/index.html
URL_NGINX_STATIC=http://127.0.0.1:$PORT_NGINX_STATIC/index.html
URL_NODE=http://127.0.0.1:$PORT_NODE/auth
URL_STOCK=http://127.0.0.1:$PORT_STOCK/auth

# The rows, ROUND as $1. Each warms up in the first round (not row 3:
# that would fill the cache it measures).
row_1() { measure 1 "$1" "$URL_HELLO" hello; }
row_2() { measure 2 "$1" "$URL_JWTGATE" jwtgate; }
row_3() { pool_row 3 "$1" jwtgate-pool "$PORT_POOL" "$JWTGATE"; }
# pool_row ROW ROUND NAME PORT BINARY: a fresh jwtgate sent each pooled token once.
pool_row() {
    local row=$1 round=$2 name=$3 port=$4 url=http://127.0.0.1:$4/auth
    start_jwtgate "$name" "$port" "$5"
    measure "$row" "$round" "$url" "$name" TOKEN_FILE="$TOKENS/pool.txt" STOP_AFTER="$POOL"
    local counts sent=$REQUESTS
    counts=$(cache_counts "$port")
    log "row $row round $round: jwtgate saw ${counts% *} cache hits, ${counts#* } misses"
    ((row != 3)) || printf '%s\t%s\t%s\n' "$round" "${counts% *}" "${counts#* }" >>"$WORK/pool-cache.tsv"
    # Send the tokens not sent yet (unmeasured), so that all POOL are cached
    # when the peak RSS is read.
    if ((sent < POOL)); then
        WRK_SECONDS=120 wrk_run "$url" TOKEN_FILE="$TOKENS/pool.txt" \
            START_INDEX="$sent" STOP_AFTER=$((POOL - sent))
    fi
    counts=$(cache_counts "$port")
    log "row $row round $round: ${counts#* } tokens verified and cached; peak RSS $(($(peak_kb "${PID[$name]}") / 1024)) MiB"
    record_rss "$row" "$round" "$name"
    stop "$name"
}
row_4() { measure 4 "$1" "$URL_NGINX_AUTH" "nginx-auth jwtgate"; }
row_5() { measure 5 "$1" "$URL_NGINX_CACHE" "nginx-cache jwtgate"; }
row_6() { measure 6 "$1" "$URL_NGINX_HELLO" "nginx-hello hello"; }
row_7() { measure 7 "$1" "$URL_NGINX_STATIC" nginx-static; }
row_8() { measure 8 "$1" "$URL_NODE" node; }
row_9() { measure 9 "$1" "$URL_STOCK" stock-hello; }
# Row 2 with rules the bench token satisfies (it is an org admin with
# org:dashboard:manage): what a rule costs on a cache hit (issue 10).
URL_RULES="$URL_JWTGATE?role=org:admin&permission=org:dashboard:manage&org=required"
row_10() { measure 10 "$1" "$URL_RULES" jwtgate; }
URL_BASELINE=http://127.0.0.1:$PORT_BASELINE/auth
row_11() { measure 11 "$1" "$URL_BASELINE" jwtgate-baseline; }
row_12() { pool_row 12 "$1" jwtgate-baseline-pool "$PORT_BASELINE_POOL" "$BASELINE_JWTGATE"; }
ROW_SERVERS=("" hello jwtgate jwtgate-pool "nginx-auth jwtgate" "nginx-cache jwtgate"
    "nginx-hello hello" nginx-static node stock-hello jwtgate jwtgate-baseline jwtgate-baseline-pool)
ROW_URLS=("" "$URL_HELLO" "$URL_JWTGATE" "$URL_POOL" "$URL_NGINX_AUTH" "$URL_NGINX_CACHE"
    "$URL_NGINX_HELLO" "$URL_NGINX_STATIC" "$URL_NODE" "$URL_STOCK" "$URL_RULES" "$URL_BASELINE"
    "http://127.0.0.1:$PORT_BASELINE_POOL/auth")

run_rounds() {
    : >"$SAMPLES"
    : >"$RSS"
    : >"$WORK/pool-cache.tsv"
    local round row
    for round in $(seq "$ROUNDS"); do
        log "round $round of $ROUNDS ($DURATION s per row)"
        for row in "${ROWS[@]}"; do
            if ((round == 1 && row != 3 && row != 12 && WARMUP > 0)); then warm_up "${ROW_URLS[row]}"; fi
            "row_$row" "$round"
        done
        for row in "${ROWS[@]}"; do
            ((row == 3 || row == 12)) || record_rss "$row" "$round" "${ROW_SERVERS[row]}"
        done
    done
}

# Start-to-ready: from exec of jwtgate (PEM key, POOL-token cache) to the
# first 200 on /readyz, START_RUNS times; sets READY_MS to the median.
measure_start() {
    local i t0 t1 samples=() config
    config=$(jwtgate_config "$PORT_START")
    for i in $(seq "$START_RUNS"); do
        t0=${EPOCHREALTIME//[.,]/} # µs
        start jwtgate-start "$JWTGATE" --config "$config"
        wait_until 10 is_200 "$PORT_START" /readyz || die "jwtgate never ready"
        t1=${EPOCHREALTIME//[.,]/}
        stop jwtgate-start
        samples+=("$(calc "($t1 - $t0) / 1000")")
    done
    log "start-to-ready samples (ms): ${samples[*]}"
    READY_MS=$(printf '%s\n' "${samples[@]}" | median)
}

# One RS256 (RSA-2048) verify in µs, from `openssl speed` on one core.
measure_rsa_verify() {
    openssl speed -seconds 2 rsa2048 2>/dev/null | awk '
        /verify\/s/ { for (i = 1; i <= NF; i++) if ($i == "verify/s") from_end = NF - i }
        /^rsa 2048 bits/ { printf "%.2f", 1000000 / $(NF - from_end) }'
}

# --- Browser sign-in rows (B1 to B4) -----------------------------------------------
# jwtgate with [browser] on: the bench key, a publishable key for the
# issuer's host, the stand-in Backend API.
browser_config() {
    local host=${ISSUER#https://}
    cat >"$WORK/jwtgate-browser.toml" <<TOML
listen = "127.0.0.1:$PORT_BROWSER"
[keys]
jwt_key_file = "$TOKENS/jwt.pem"
publishable_key = "pk_live_$(printf '%s$' "$host" | base64 -w0 | tr -d '=')"
secret_key = "sk_live_bench"
api_url = "http://127.0.0.1:$PORT_BAPI"
[verify]
issuer = "$ISSUER"
authorized_parties = ["$AZP"]
[cache]
tokens = $POOL
[browser]
handshake = true
TOML
    echo "$WORK/jwtgate-browser.toml"
}

# hs_run NAME ROW URL CONNECTIONS EXPECTED_STATUS "SERVERS" HEADER...: one wrk
# run with these headers (no Authorization); every answer must have
# EXPECTED_STATUS (wrk counts non-2xx: all or none). Appends a line to
# $WORK/handshake.tsv: row, name, req/s, p50 µs, p99 µs, CPU µs/req of the
# first server, of the others.
hs_run() {
    local name=$1 row=$2 url=$3 conns=$4 status=$5 servers=$6 out line h args=()
    shift 6
    for h in "$@"; do args+=(-H "$h"); done
    local main=() others=() n
    for n in $servers; do
        if ((${#main[@]} == 0)); then mapfile -t main < <(pids_of "$n")
        else mapfile -t -O "${#others[@]}" others < <(pids_of "$n"); fi
    done
    wait_quiet
    local b0 o0 b1 o1
    b0=$(cpu_ticks "${main[@]}") o0=$(cpu_ticks "${others[@]}")
    out=$(wrk -t1 -c"$conns" -d"${DURATION}s" --timeout 5s -s "$REPO/bench/wrk.lua" "${args[@]}" "$url") ||
        die "wrk failed on $url: $out"
    b1=$(cpu_ticks "${main[@]}") o1=$(cpu_ticks "${others[@]}")
    line=$(grep '^RESULT ' <<<"$out") || die "no RESULT from wrk on $url: $out"
    eval "$(sed -E 's/^RESULT //; s/([a-z0-9_]+)=/\U\1=/g' <<<"$line")"
    ((REQUESTS > 0)) || die "$row: no requests completed"
    if [[ $status == 200 ]]; then ((NON2XX == 0)) || die "$row: $NON2XX answers were not 2xx"
    else ((NON2XX == REQUESTS)) || die "$row: $((REQUESTS - NON2XX)) answers were 2xx, expected $status"; fi
    local rps cpu cpu_others
    rps=$(calc "$REQUESTS * 1000000 / $DURATION_US")
    cpu=$(calc "($b1 - $b0) * 1000000 / $CLK_TCK / $REQUESTS")
    cpu_others=$(calc "($o1 - $o0) * 1000000 / $CLK_TCK / $REQUESTS")
    printf '%s\t%s\t%.0f\t%s\t%s\t%.2f\t%.2f\n' "$row" "$name" "$rps" "$P50_US" "$P99_US" "$cpu" \
        "$cpu_others" >>"$WORK/handshake.tsv"
    log "$(printf '%s %-34s %8.0f req/s  p50 %6.3f ms  p99 %6.3f ms  %6.2f us CPU/req' "$row" "$name" \
        "$rps" "$(calc "$P50_US / 1000")" "$(calc "$P99_US / 1000")" "$cpu")"
}

# join_headers LINE...: the lines joined with CRLF (for `http`/`expect`).
join_headers() {
    local out="" line
    for line in "$@"; do out+="${out:+$'\r\n'}$line"; done
    printf '%s' "$out"
}

handshake_rows() {
    log "browser sign-in rows"
    : >"$WORK/handshake.tsv"
    [[ -n ${PID[jwtgate]:-} ]] || start_jwtgate jwtgate "$PORT_JWTGATE"
    # Tokens the other rows do not use, so every return leg verifies a new one.
    tail -n 30000 "$TOKENS/pool.txt" >"$WORK/bapi-tokens.txt"
    start bapi env PORT="$PORT_BAPI" TOKENS_FILE="$WORK/bapi-tokens.txt" node "$REPO/bench/node/fake-bapi.mjs"
    wait_until 10 is_listening "$PORT_BAPI" || die "fake BAPI never listened: $(<"$WORK/logs/bapi.log")"
    start jwtgate-browser "$JWTGATE" --config "$(browser_config)"
    wait_until 10 is_200 "$PORT_BROWSER" /readyz || die "jwtgate (browser) never ready: $(<"$WORK/logs/jwtgate-browser.log")"
    local nav=("Accept: text/html,application/xhtml+xml" "Sec-Fetch-Dest: document"
        "X-Original-Method: GET" "X-Forwarded-Host: ${AZP#https://}" "X-Forwarded-Proto: https")
    local signed_in=("Cookie: theme=dark; __session=$HOT_TOKEN; __client_uat=1" "X-Original-URI: /dash?tab=1" "${nav[@]}")
    local uat_only=("Cookie: __client_uat=1" "X-Original-URI: /dash?tab=1" "${nav[@]}")
    local back=("X-Original-URI: /dash?tab=1&__clerk_handshake_nonce=bench" "${nav[@]}")
    # What each row answers, before measuring.
    local lines
    lines=$(join_headers "${signed_in[@]}")
    expect "$PORT_JWTGATE" /auth "$lines" 200 "X-User-Id: user_00000000"
    expect "$PORT_BROWSER" /auth "$lines" 200 "X-User-Id: user_00000000"
    lines=$(join_headers "${uat_only[@]}")
    expect "$PORT_BROWSER" /auth "$lines" 401 "X-Jwtgate-Location: https://clerk.bench.jwtgate.invalid/v1/client/handshake?redirect_url=https%3A%2F%2Fapp.bench.jwtgate.invalid%2Fdash%3Ftab%3D1&"
    lines=$(join_headers "${back[@]}")
    expect "$PORT_BROWSER" /auth "$lines" 401 "X-Jwtgate-Location: https://app.bench.jwtgate.invalid/dash?tab=1"
    expect "$PORT_BROWSER" /auth "$lines" 401 "X-Jwtgate-Set-Cookie-4: __session=ey"
    local url_off=http://127.0.0.1:$PORT_JWTGATE/auth url_on=http://127.0.0.1:$PORT_BROWSER/auth
    hs_run "cookie hit, browser off" B1 "$url_off" "$CONNECTIONS" 200 jwtgate "${signed_in[@]}"
    hs_run "cookie hit, browser on" B2 "$url_on" "$CONNECTIONS" 200 jwtgate-browser "${signed_in[@]}"
    hs_run "handshake redirect" B3 "$url_on" "$CONNECTIONS" 401 jwtgate-browser "${uat_only[@]}"
    hs_run "return leg (nonce exchange)" B4 "$url_on" "$HS_CONNECTIONS" 401 "jwtgate-browser bapi" "${back[@]}"
    local exchanges
    exchanges=$(http_body "$PORT_BROWSER" /metrics | awk '/^jwtgate_nonce_exchanges_total/ { print }' | tr '\n' ' ')
    log "nonce exchanges: $exchanges"
    grep -q 'outcome="ok"} [1-9]' <<<"$exchanges" || die "no nonce exchange succeeded: $exchanges"
    ! grep -Eq 'outcome="(status|bad-response|too-large|network|timeout|overloaded)"} [1-9]' <<<"$exchanges" ||
        die "nonce exchanges failed during B4: $exchanges"
    handshake_report >"$WORK/handshake.md"
}

handshake_report() {
    local b3 b4
    b3=$(awk -F'\t' '$1 == "B3" { print $6 }' "$WORK/handshake.tsv")
    b4=$(awk -F'\t' '$1 == "B4" { print $6 }' "$WORK/handshake.tsv")
    echo "## Browser sign-in (jwtgate direct, $DURATION s per row, 1 round)"
    echo
    echo "| # | row | req/s | p50 ms | p99 ms | jwtgate CPU µs/req | stand-in BAPI CPU µs/req |"
    echo "|---|---|---:|---:|---:|---:|---:|"
    awk -F'\t' '{ printf "| %s | %s | %s | %.3f | %.3f | %s | %s |\n", $1, $2, $3, $4 / 1000, $5 / 1000, $6, ($1 == "B4" ? $7 : "") }' \
        "$WORK/handshake.tsv"
    echo
    echo "One handshake round (B3 + B4: two requests to jwtgate, one nonce exchange): $(calc "$b3 + $b4" | xargs printf '%.1f') µs of jwtgate CPU. B4 runs $HS_CONNECTIONS connections (the exchange pool's threads); its latency includes the exchange over loopback HTTP."
}

# --- Report -------------------------------------------------------------------
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# med ROW COLUMN: the median over the rounds (columns of $SAMPLES: 3 rps,
# 4 p50_us, 5 p99_us, 6 cpu_us, 7 requests, 8 errors).
med() { awk -v r="$1" -v c="$2" -F'\t' '$1 == r { print $c }' "$SAMPLES" | median; }

# The peak RSS of a row (the largest of the rounds), as "MiB (breakdown)".
rss_of() {
    awk -v r="$1" -F'\t' '$1 == r && $3 >= best { best = $3; parts = $4 }
        END { n = split(parts, p, "+"); printf "%.1f", best / 1024; if (n > 1) printf " (%s)", parts }' "$RSS"
}
rss_mib() { awk -v r="$1" -F'\t' '$1 == r && $3 > best { best = $3 } END { printf "%.1f", best / 1024 }' "$RSS"; }

# A bar: NAME VALUE OP LIMIT UNIT -> "met"/"MISSED" line.
bar() {
    local name=$1 value=$2 op=$3 limit=$4 unit=${5:-} ok
    ok=$(calc "($value $op $limit) ? 1 : 0")
    if ((ok)); then
        printf -- '- met: %s: %s%s (bar %s %s%s)\n' "$name" "$value" "$unit" "$op" "$limit" "$unit"
    else
        printf -- '- MISSED: %s: %s%s (bar %s %s%s; off by %s%s)\n' "$name" "$value" "$unit" "$op" \
            "$limit" "$unit" "$(calc "($value) - ($limit)" | xargs printf '%+.3g')" "$unit"
    fi
}

ratio() { calc "$1 / $2" | xargs printf '%.3f'; }

report() {
    local verify_us=$1 ready_ms=$2 row
    local -a rps p50 p99 cpu
    for row in "${ROWS[@]}"; do
        rps[row]=$(med "$row" 3 | xargs printf '%.0f')
        p50[row]=$(calc "$(med "$row" 4) / 1000" | xargs printf '%.3f')
        p99[row]=$(calc "$(med "$row" 5) / 1000" | xargs printf '%.3f')
        cpu[row]=$(med "$row" 6 | xargs printf '%.1f')
    done
    local commit cpu_model previous=""
    commit=$(git -C "$REPO" rev-parse --short HEAD)
    [[ -z $(git -C "$REPO" status --porcelain -- src Cargo.toml Cargo.lock nginx) ]] ||
        commit="$commit (with uncommitted changes in src/, nginx/ or Cargo.*)"
    cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    if [[ -f $RESULTS ]]; then
        previous=${RESULTS%.md}-previous.md
        mv "$RESULTS" "$previous"
    elif [[ $RESULTS != "$REPO/bench/results.md" && -f $REPO/bench/results.md ]]; then
        previous=$REPO/bench/results.md
    fi
    local hits misses
    hits=$(awk -F'\t' '{ print $2 }' "$WORK/pool-cache.tsv" | median)
    misses=$(awk -F'\t' '{ print $3 }' "$WORK/pool-cache.tsv" | median)

    {
        echo "# jwtgate benchmark"
        echo
        echo "Written by \`bench/run.sh\`$([[ $QUICK == 1 ]] && echo ' (QUICK=1)'); do not edit by hand."
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "- commit: $commit"
        echo "- machine: $(nproc) CPUs ($cpu_model), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr); client, servers and nginx share these CPUs"
        echo "- load: $(wrk -v 2>&1 | head -n 1 | awk '{ print "wrk", $2 }'), $THREADS thread, $CONNECTIONS connections, $DURATION s per sample, median of $ROUNDS interleaved round(s)"
        echo "- software: $("$NGINX" -v 2>&1 | sed 's/.*: //'), node $(node -v), @clerk/backend $(node -p "require('$REPO/bench/node/node_modules/@clerk/backend/package.json').version" 2>/dev/null || echo '?'), $(openssl version | cut -d' ' -f1-2)"
        echo "- servers: jwtgate and hello with workers = 0 (one per CPU), unpinned; nginx worker_processes auto ($(nproc)); node: one process"
        [[ -z $BENCH_NICE ]] || echo "- priority: the bench, wrk and every server ran at nice $BENCH_NICE (BENCH_NICE), because other work shared the machine; see the other-load column below"
        echo
        echo "| # | row | req/s | p50 ms | p99 ms | server CPU µs/req | peak RSS MiB (VmHWM) |"
        echo "|---|---|---:|---:|---:|---:|---|"
        for row in "${ROWS[@]}"; do
            echo "| $row | ${ROW_NAMES[row]} | ${rps[row]} | ${p50[row]} | ${p99[row]} | ${cpu[row]} | $(rss_of "$row") |"
        done
        echo
        echo "Row 3 sends each of the $POOL tokens once (a fresh jwtgate each round): jwtgate counted $misses misses and $hits hits (median per round); its RSS is read after all $POOL tokens are cached. CPU: utime+stime of the row's server processes (nginx master and workers plus its auth server) over the sample, per request; RSS summed over them."
        echo
        echo "## Ratios (same run)"
        echo
        echo "- (2)/(1) jwtgate cached / hello: $(ratio "${rps[2]}" "${rps[1]}")x req/s; p99 $(calc "${p99[2]} - ${p99[1]}" | xargs printf '%+.3f') ms"
        echo "- (2)/(9) jwtgate cached / stock may_minihttp hello: $(ratio "${rps[2]}" "${rps[9]}")x; (1)/(9) hello, patched / stock may_minihttp: $(ratio "${rps[1]}" "${rps[9]}")x req/s, CPU/req $(ratio "${cpu[1]}" "${cpu[9]}")x"
        echo "- (10)/(2) cache hit with 3 location rules / without: $(ratio "${rps[10]}" "${rps[2]}")x req/s; CPU/req $(ratio "${cpu[10]}" "${cpu[2]}")x"
        echo "- (4)/(6) nginx -> jwtgate / nginx -> hello: $(ratio "${rps[4]}" "${rps[6]}")x"
        echo "- (5)/(7) nginx decision cache / nginx static: $(ratio "${rps[5]}" "${rps[7]}")x"
        echo "- (2)/(8) jwtgate cached / node: $(ratio "${rps[2]}" "${rps[8]}")x; (4)/(8) through nginx / node: $(ratio "${rps[4]}" "${rps[8]}")x"
        echo "- (3) CPU per request: ${cpu[3]} µs; one RS256 verify (openssl speed rsa2048, 1 core): $verify_us µs; + $BAR_VERIFY_PLUS_US µs = $(calc "$verify_us + $BAR_VERIFY_PLUS_US") µs. The HTTP round itself costs (1) ${cpu[1]} µs (hello) and (2) ${cpu[2]} µs (a cache hit), so a miss costs (3) - (2) = $(calc "${cpu[3]} - ${cpu[2]}" | xargs printf '%.1f') µs on top of a hit"
        echo "- start to ready (exec to /readyz 200, PEM key, median of $START_RUNS): $ready_ms ms"
        if [[ -n $BASELINE ]]; then
            echo "- (2)/(11) cache hit, this commit / BASELINE $BASELINE: $(ratio "${rps[2]}" "${rps[11]}")x req/s; CPU/req $(ratio "${cpu[2]}" "${cpu[11]}")x; p99 $(calc "${p99[2]} - ${p99[11]}" | xargs printf '%+.3f') ms"
            echo "- (3)/(12) miss, this commit / BASELINE: $(ratio "${rps[3]}" "${rps[12]}")x req/s; CPU/req $(ratio "${cpu[3]}" "${cpu[12]}")x; peak RSS with $POOL cached tokens $(rss_mib 3) / $(rss_mib 12) MiB = $(ratio "$(rss_mib 3)" "$(rss_mib 12)")x"
        fi
        echo
        echo "## Bars"
        echo
        bar "(2)/(1) req/s" "$(ratio "${rps[2]}" "${rps[1]}")" ">=" "$BAR_HELLO_RATIO" x
        bar "(2)/(9) req/s (against stock may_minihttp)" "$(ratio "${rps[2]}" "${rps[9]}")" ">=" "$BAR_STOCK_RATIO" x
        bar "(2) p99 - (1) p99" "$(calc "${p99[2]} - ${p99[1]}" | xargs printf '%.3f')" "<=" "$BAR_HELLO_P99_MS" " ms"
        bar "(3) CPU/req" "${cpu[3]}" "<=" "$(calc "$verify_us + $BAR_VERIFY_PLUS_US")" " µs"
        bar "(4)/(6) req/s" "$(ratio "${rps[4]}" "${rps[6]}")" ">=" "$BAR_NGINX_RATIO" x
        bar "(5)/(7) req/s" "$(ratio "${rps[5]}" "${rps[7]}")" ">=" "$BAR_CACHE_RATIO" x
        local best=2
        ((${rps[4]} <= ${rps[2]})) || best=4
        bar "($best)/(8) req/s (better of 2 and 4)" "$(ratio "${rps[best]}" "${rps[8]}")" ">=" "$BAR_NODE_RATIO" x
        bar "peak RSS with $POOL cached tokens (row 3)" "$(rss_mib 3)" "<=" "$BAR_RSS_MIB" " MiB"
        bar "start to ready" "$ready_ms" "<=" "$BAR_READY_MS" " ms"
        if [[ -n $BASELINE ]]; then
            bar "(2)/(11) req/s (against BASELINE)" "$(ratio "${rps[2]}" "${rps[11]}")" ">=" "$BAR_BASELINE_RATIO" x
            bar "(3)/(12) CPU/req (against BASELINE)" "$(ratio "${cpu[3]}" "${cpu[12]}")" "<=" "$BAR_BASELINE_COST" x
            bar "(3)/(12) peak RSS (against BASELINE)" "$(ratio "$(rss_mib 3)" "$(rss_mib 12)")" "<=" "$BAR_BASELINE_COST" x
        fi
        echo
        echo "## Against the previous results"
        echo
        if [[ -n $previous ]]; then
            echo "Previous: \`${previous#"$REPO"/}\` ($(grep -m1 '^- date:' "$previous" | sed 's/^- date: //'), $(grep -m1 '^- commit:' "$previous" | sed 's/^- commit: //')). Ratios new/previous; req/s below 0.95 or p99/CPU above 1.05 are marked."
            echo
            echo "| # | req/s | p99 | CPU/req |"
            echo "|---|---:|---:|---:|"
            for row in 1 2 3 4 5 6 7 8 9; do
                awk -F'|' -v r="$row" -v rps="${rps[row]}" -v p99="${p99[row]}" -v cpu="${cpu[row]}" '
                    function cmp(new, old, worse_if_lower) {
                        if (old + 0 == 0) return "n/a"
                        q = new / old
                        mark = (worse_if_lower ? q < 0.95 : q > 1.05) ? " (!)" : ""
                        return sprintf("%.3f%s", q, mark)
                    }
                    !found && $2 ~ /^ *[0-9]+ *$/ && $2 + 0 == r {
                        printf "| %s | %s | %s | %s |\n", r, cmp(rps, $4, 1), cmp(p99, $6, 0), cmp(cpu, $7, 0)
                        found = 1
                    }
                    END { if (!found) printf "| %s | n/a | n/a | n/a |\n", r }' "$previous"
            done
        else
            echo "No previous results to compare with."
        fi
        echo
        echo "## Every sample"
        echo
        echo "Other load: CPU time used on the machine by neither the row's servers nor wrk during the sample, as a share of all CPUs (the machine may be shared; samples wait up to $QUIET_WAIT s for it to be below $(calc "$QUIET_MAX * 100")% first)."
        echo
        echo "| # | round | req/s | p50 µs | p99 µs | CPU µs/req | requests | socket errors | other load |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
        sort -t$'\t' -k1,1n -k2,2n "$SAMPLES" | awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 * 100 }'
        echo
        cat "$WORK/handshake.md"
    } >"$RESULTS"
    log "wrote ${RESULTS#"$REPO"/}"
    sed -n '/^| # | row/,/^## Against/p' "$RESULTS" | head -n -1
    sed -n '/^## Against/,/^## Every/p' "$RESULTS" | head -n -1
}

# STOCK_ONLY=1: rows 1, 9 and 2 as a section of its own at the end of
# RESULTS (between two marker comments; a previous one is replaced), the
# rest of the file untouched.
report_stock() {
    local row section commit begin="<!-- STOCK_ONLY=1 bench/run.sh: begin -->"
    local end="<!-- STOCK_ONLY=1 bench/run.sh: end -->"
    local -a rps p50 p99 cpu
    for row in "${ROWS[@]}"; do
        rps[row]=$(med "$row" 3 | xargs printf '%.0f')
        p50[row]=$(calc "$(med "$row" 4) / 1000" | xargs printf '%.3f')
        p99[row]=$(calc "$(med "$row" 5) / 1000" | xargs printf '%.3f')
        cpu[row]=$(med "$row" 6 | xargs printf '%.1f')
    done
    commit=$(git -C "$REPO" rev-parse --short HEAD)
    [[ -z $(git -C "$REPO" status --porcelain -- src vendor examples bench/stock-hello Cargo.toml Cargo.lock) ]] ||
        commit="$commit (with uncommitted changes)"
    section=$(
        echo "$begin"
        echo "## HTTP layer: patched against stock may_minihttp 0.1.11"
        echo
        echo "Written by \`STOCK_ONLY=1 bench/run.sh\` (rows 1, 9 and 2 only; the tables above are from the last full run)."
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "- commit: $commit"
        echo "- machine: $(nproc) CPUs, client and servers share them; load: $(wrk -v 2>&1 | head -n 1 | awk '{ print "wrk", $2 }'), $THREADS thread, $CONNECTIONS connections, $DURATION s per sample, median of $ROUNDS interleaved rounds (order 1, 9, 2)"
        echo "- row 1: examples/hello.rs on the patched copy (vendor/may_minihttp, default HttpConfig); row 9: the same server on stock may_minihttp 0.1.11 (bench/stock-hello); row 2: jwtgate, one token (cache hit)"
        echo
        echo "| # | row | req/s | p50 ms | p99 ms | server CPU µs/req | peak RSS MiB (VmHWM) |"
        echo "|---|---|---:|---:|---:|---:|---|"
        for row in "${ROWS[@]}"; do
            echo "| $row | ${ROW_NAMES[row]} | ${rps[row]} | ${p50[row]} | ${p99[row]} | ${cpu[row]} | $(rss_of "$row") |"
        done
        echo
        echo "- (1)/(9) hello, patched / stock: $(ratio "${rps[1]}" "${rps[9]}")x req/s; CPU/req $(ratio "${cpu[1]}" "${cpu[9]}")x; p99 $(calc "${p99[1]} - ${p99[9]}" | xargs printf '%+.3f') ms"
        echo "- (2)/(9) jwtgate cache hit / stock hello: $(ratio "${rps[2]}" "${rps[9]}")x req/s; CPU/req $(ratio "${cpu[2]}" "${cpu[9]}")x"
        [[ -z $BASELINE ]] || echo "- (2)/(11) jwtgate cache hit, this commit / BASELINE $BASELINE: $(ratio "${rps[2]}" "${rps[11]}")x req/s; CPU/req $(ratio "${cpu[2]}" "${cpu[11]}")x"
        bar "(2)/(9) req/s" "$(ratio "${rps[2]}" "${rps[9]}")" ">=" "$BAR_STOCK_RATIO" x
        echo
        echo "| # | round | req/s | p50 µs | p99 µs | CPU µs/req | requests | socket errors | other load |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
        sort -t$'\t' -k2,2n -k1,1n "$SAMPLES" | awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s | %s | %.0f%% |\n", $1, $2, $3, $4, $5, $6, $7, $8, $9 * 100 }'
        echo "$end"
    )
    local rest=""
    if [[ -f $RESULTS ]]; then
        rest=$(awk -v b="$begin" -v e="$end" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' "$RESULTS")
    fi
    printf '%s\n\n%s\n' "$rest" "$section" | cat -s >"$RESULTS"
    log "wrote the STOCK_ONLY section of ${RESULTS#"$REPO"/}"
    printf '%s\n' "$section" | sed -n '/^| # | row/,/^- met\|^- MISSED/p'
}

# --- Main -----------------------------------------------------------------------
main() {
    if [[ -n $BENCH_NICE ]]; then
        renice -n "$BENCH_NICE" -p $$ >/dev/null || die "renice -n $BENCH_NICE (negative needs root)"
        # With autogroups (Linux's default), nice only ranks processes within
        # one session; CPU time between sessions follows the session group's
        # own nice. Set it too (it is restored on exit).
        if [[ -w /proc/$$/autogroup ]]; then
            AUTOGROUP_NICE=$(awk '{ print $3 }' /proc/$$/autogroup)
            echo "$BENCH_NICE" >/proc/$$/autogroup || die "cannot set the session's autogroup nice"
        fi
        log "running at nice $BENCH_NICE"
    fi
    check_tools
    build
    mint_tokens
    if [[ $HANDSHAKE_ONLY == 1 ]]; then
        handshake_rows
        cat "$WORK/handshake.md"
        return
    fi
    if [[ $STOCK_ONLY == 1 ]]; then
        start_servers
        check_servers
        run_rounds
        report_stock
        return
    fi
    log "one RS256 verify: openssl speed -seconds 2 rsa2048"
    local verify_us
    verify_us=$(measure_rsa_verify)
    log "one RS256 verify: $verify_us µs"
    measure_start
    log "start to ready: $READY_MS ms (median)"
    start_servers
    check_servers
    run_rounds
    handshake_rows
    report "$verify_us" "$READY_MS"
}

main "$@"
