#!/usr/bin/env bash
# bench/run.sh measures what Mandate adds in front of an MCP server: it runs
# the same tools/call load directly against the Go SDK's conformance
# everything-server, then through `mandate serve` without authentication
# (allow-all), then through `mandate serve` with authentication, the default
# policy and a mandate covering the tool, and compares latency, throughput,
# Mandate's CPU time per call and its memory per idle session with the
# project's targets. See bench/README.md for how to read the output.
#
# Everything listens on 127.0.0.1 only, every phase is bounded in time, and
# every process the script starts is stopped on exit.
#
# Environment (all optional):
#   DURATION=10s            measured window of each load run
#   WARMUP=1s               load before each window, not counted
#   IDLE_SESSIONS=2000      sessions opened by the idle-memory run
#   SETTLE=2s               wait after opening them before reading RSS
#   TOOL=test_simple_text   tool called on the everything-server
#   TOOL_ARGS='{}'          its arguments (JSON object)
#   MANDATE_PATH=/mcp       path of Mandate's MCP endpoint
#   START_TIMEOUT=20        seconds a server gets to start listening
#   BUILD_TIMEOUT=150       seconds `go build ./cmd/mandate` may take
#   STRICT=1                exit 3 when a target is missed
#   KEEP=1                  keep the work directory (logs, JSON reports)
#
# Exit status: 0 all measured, 1 direct, Mandate or policy measurement
# impossible (the results measured are still printed), 3 target missed with
# STRICT=1.
set -euo pipefail

DURATION=${DURATION:-10s}
WARMUP=${WARMUP:-1s}
IDLE_SESSIONS=${IDLE_SESSIONS:-2000}
SETTLE=${SETTLE:-2s}
TOOL=${TOOL:-test_simple_text}
TOOL_ARGS=${TOOL_ARGS:-'{}'}
MANDATE_PATH=${MANDATE_PATH:-/mcp}
START_TIMEOUT=${START_TIMEOUT:-20}
BUILD_TIMEOUT=${BUILD_TIMEOUT:-150}
STRICT=${STRICT:-0}
KEEP=${KEEP:-0}

# Targets, from the design: added median latency with one session (ms),
# throughput through Mandate relative to direct with 16 sessions (%),
# Mandate CPU per forwarded call (µs), Mandate RSS per idle session (KiB),
# and throughput with the default policy and a mandate relative to
# allow-all with 16 sessions (%).
TARGET_ADDED_P50_MS=0.3
TARGET_THROUGHPUT_PCT=75
TARGET_CPU_US=60
TARGET_IDLE_KIB=64
TARGET_POLICY_PCT=85

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/mandate-bench.XXXXXX")
bin=$work/bin
mkdir -p "$bin"
started=() # PIDs of the servers this script started and has not stopped yet

say() { printf '%s\n' "$*"; }
warn() { printf 'run.sh: %s\n' "$*" >&2; }

# stop PID... sends SIGTERM, waits up to 5 s, then sends SIGKILL.
stop() {
	local pid alive
	for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
	for _ in $(seq 50); do
		alive=0
		for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.1
	done
	for pid in "$@"; do
		if kill -0 "$pid" 2>/dev/null; then
			warn "pid $pid ignored SIGTERM for 5 s; sending SIGKILL"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	done
	local keep=() p
	for p in ${started[@]+"${started[@]}"}; do
		for pid in "$@"; do [[ $p == "$pid" ]] && continue 2; done
		keep+=("$p")
	done
	started=(${keep[@]+"${keep[@]}"})
}

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	((${#started[@]})) && stop "${started[@]}"
	if [[ $KEEP == 1 ]]; then
		say "work directory kept: $work"
	else
		rm -rf "$work"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v go >/dev/null || { warn "go is not on PATH"; exit 1; }
command -v jq >/dev/null || { warn "jq is required to read mcpload's JSON reports"; exit 1; }

# gobuild OUTPUT PACKAGE builds with the repository's go.mod. While go.sum
# still lacks the checksums of the Go SDK's own dependencies, it falls back
# to a scratch copy of go.mod and go.sum in the work directory, so the
# repository's files are never modified by a benchmark run.
modflags=()
gobuild() {
	local out=$1 pkg=$2 log rc=0
	log=$work/build-$(basename "$out").log
	(cd "$root" && timeout "$BUILD_TIMEOUT" go build ${modflags[@]+"${modflags[@]}"} -o "$out" "$pkg") 2>"$log" || rc=$?
	if ((rc != 0 && ${#modflags[@]} == 0)) && grep -q 'missing go.sum entry' "$log"; then
		mkdir -p "$work/mod"
		cp "$root/go.mod" "$root/go.sum" "$work/mod/"
		modflags=(-modfile="$work/mod/go.mod" -mod=mod)
		warn "go.sum lacks checksums for the Go SDK's dependencies; building with a scratch copy of go.mod/go.sum"
		rc=0
		(cd "$root" && timeout "$BUILD_TIMEOUT" go build "${modflags[@]}" -o "$out" "$pkg") 2>"$log" || rc=$?
	fi
	case $rc in
	0) return 0 ;;
	124) warn "go build $pkg did not finish within ${BUILD_TIMEOUT}s (BUILD_TIMEOUT)" ;;
	*) sed 's/^/    /' "$log" >&2 ;;
	esac
	return 1
}

# free_port prints a loopback TCP port nothing listens on, other than $1.
# It picks ports below the kernel's ephemeral range: a port in that range
# may be the local end of some connection, which a listener cannot bind.
free_port() {
	local p lo=32768 _
	read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
	((lo > 11024)) || lo=32768
	for _ in $(seq 200); do
		p=$((10000 + RANDOM % (lo - 10000)))
		[[ $p == "${1:-}" ]] && continue
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			say "$p"
			return 0
		fi
	done
	return 1
}

# wait_port PORT PID SECONDS waits for PORT to accept connections. It
# returns 1 on timeout and 2 if PID exits first.
wait_port() {
	local deadline=$((SECONDS + $3))
	while ((SECONDS < deadline)); do
		kill -0 "$2" 2>/dev/null || return 2
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

# wait_ready URL PID SECONDS waits for a readiness endpoint to answer 200
# (or 404: no such endpoint, so an open port is all there is to wait for).
# Without curl it returns at once.
wait_ready() {
	command -v curl >/dev/null || return 0
	local deadline=$((SECONDS + $3)) code
	while ((SECONDS < deadline)); do
		kill -0 "$2" 2>/dev/null || return 2
		code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" || true)
		[[ $code == 200 || $code == 404 ]] && return 0
		sleep 0.2
	done
	return 1
}

# load NAME URL SESSIONS [mcpload flags...] runs one load measurement and
# leaves its JSON report in $work/NAME.json. It fails when no report was
# written; a report with errors still counts as written.
load() {
	local name=$1 url=$2 sessions=$3 rc=0
	shift 3
	say "-- $name: $sessions session(s), $WARMUP warmup + $DURATION"
	"$bin/mcpload" -url "$url" -sessions "$sessions" -duration "$DURATION" -warmup "$WARMUP" \
		-tool "$TOOL" -args "$TOOL_ARGS" -json "$@" >"$work/$name.json" 2>"$work/$name.err" || rc=$?
	if [[ ! -s $work/$name.json ]]; then
		warn "$name: mcpload exited $rc without a report:"
		sed 's/^/    /' "$work/$name.err" >&2
		rm -f "$work/$name.json"
		return 1
	fi
	if ((rc != 0)); then
		warn "$name: $(jq -r '"\(.errors) failed calls, first: \(.first_error // "-")"' "$work/$name.json")"
	fi
}

# row LABEL NAME prints one line of the results table from $work/NAME.json.
row() {
	local f=$work/$2.json
	if [[ ! -f $f ]]; then
		printf '%-24s %s\n' "$1" "not measured"
		return
	fi
	jq -r '[.calls, .calls_per_s, .p50_ms, .p99_ms, .p999_ms, .errors,
	        (.cpu_us_per_call // "-"), (.peak_rss_kib // "-")] | @tsv' "$f" |
		awk -F'\t' -v l="$1" '{
			cpu = ($7 == "-") ? "-" : sprintf("%.1f", $7)
			printf "%-24s %8d %9.1f %8.3f %8.3f %8.3f %6d %10s %10s\n", l, $1, $2, $3, $4, $5, $6, cpu, $8
		}'
}

table() {
	printf '%-24s %8s %9s %8s %8s %8s %6s %10s %10s\n' \
		run calls calls/s "p50 ms" "p99 ms" "p99.9 ms" errors "CPU us/call" "peak KiB"
	row "direct, 1 session" direct-1
	row "direct, 16 sessions" direct-16
	row "mandate, 1 session" mandate-1
	row "mandate, 16 sessions" mandate-16
	row "policy, 1 session" policy-1
	row "policy, 16 sessions" policy-16
}

# verdict MEASURED OP TARGET prints ok or MISSED; OP is <= or >=.
verdict() {
	if awk -v m="$1" -v t="$3" -v op="$2" 'BEGIN { exit !((op == "<=") ? m <= t : m >= t) }'; then
		say ok
	else
		say MISSED
	fi
}

missed=0
summary() {
	local added ratio cpu kib policy
	added=$(jq -n --slurpfile t "$work/mandate-1.json" --slurpfile d "$work/direct-1.json" '$t[0].p50_ms - $d[0].p50_ms')
	ratio=$(jq -n --slurpfile t "$work/mandate-16.json" --slurpfile d "$work/direct-16.json" \
		'if $d[0].calls_per_s > 0 then 100 * $t[0].calls_per_s / $d[0].calls_per_s else 0 end')
	cpu=$(jq -r '.cpu_us_per_call // "nan"' "$work/mandate-16.json")
	kib=nan
	[[ -f $work/mandate-idle.json ]] && kib=$(jq -r '.kib_per_session // "nan"' "$work/mandate-idle.json")
	policy=nan
	if [[ -f $work/policy-16.json ]]; then
		policy=$(jq -n --slurpfile p "$work/policy-16.json" --slurpfile a "$work/mandate-16.json" \
			'if $a[0].calls_per_s > 0 then 100 * $p[0].calls_per_s / $a[0].calls_per_s else 0 end')
	fi

	local -a lines=(
		"added median latency, 1 session|$added|ms|<=|$TARGET_ADDED_P50_MS"
		"throughput through/direct, 16 sessions|$ratio|%|>=|$TARGET_THROUGHPUT_PCT"
		"Mandate CPU per forwarded call|$cpu|us|<=|$TARGET_CPU_US"
		"Mandate RSS per idle session|$kib|KiB|<=|$TARGET_IDLE_KIB"
		"throughput policy/allow-all, 16 sessions|$policy|%|>=|$TARGET_POLICY_PCT"
	)
	printf '%-44s %10s  %-8s %s\n' metric measured target verdict
	local l name value unit op target v sym
	for l in "${lines[@]}"; do
		IFS='|' read -r name value unit op target <<<"$l"
		if [[ $value == nan ]]; then
			v=MISSED
			value="-"
		else
			v=$(verdict "$value" "$op" "$target")
			value=$(awk -v x="$value" 'BEGIN { printf "%.3f", x }')
		fi
		[[ $v == ok ]] || missed=1
		sym="≥"
		[[ $op == "<=" ]] && sym="≤"
		printf '%-44s %10s  %s %-6s %s\n' "$name ($unit)" "$value" "$sym" "$target" "$v"
	done
}

say "== Mandate benchmark ($(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg))"
if awk -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN { exit !(l >= 1) }'; then
	warn "the machine is busy (load average >= 1): numbers will be noisy"
fi

say "-- building mcpload and the everything-server"
gobuild "$bin/mcpload" ./bench/mcpload || { warn "cannot build bench/mcpload"; exit 1; }
gobuild "$bin/everything-server" github.com/modelcontextprotocol/go-sdk/conformance/everything-server ||
	{ warn "cannot build the everything-server"; exit 1; }
say "-- building mandate"
mandate_ok=1
mandate_problem=
if ! gobuild "$bin/mandate" ./cmd/mandate; then
	mandate_ok=0
	mandate_problem="go build ./cmd/mandate failed (output above)"
fi

ev_port=$(free_port) || { warn "no free port"; exit 1; }
ev_url=http://127.0.0.1:$ev_port/mcp
"$bin/everything-server" -http="127.0.0.1:$ev_port" -stateless=false >"$work/everything-server.log" 2>&1 &
ev_pid=$!
started+=("$ev_pid")
if ! wait_port "$ev_port" "$ev_pid" 20; then
	warn "the everything-server did not start listening on 127.0.0.1:$ev_port:"
	sed 's/^/    /' "$work/everything-server.log" >&2
	exit 1
fi
say "-- everything-server: pid $ev_pid, $ev_url"

load direct-1 "$ev_url" 1 -pid "$ev_pid" || exit 1
load direct-16 "$ev_url" 16 -pid "$ev_pid" || exit 1

# launch_mandate CFG PORT starts `mandate serve` with CFG on PORT and sets
# mandate_pid and mandate_url, or sets launch_problem and returns 1.
launch_mandate() {
	local cfg=$1 port=$2 rc=0
	"$bin/mandate" serve --config "$cfg" --listen "127.0.0.1:$port" >>"$work/mandate.log" 2>&1 &
	mandate_pid=$!
	started+=("$mandate_pid")
	local deadline=$((SECONDS + START_TIMEOUT))
	wait_port "$port" "$mandate_pid" "$START_TIMEOUT" || rc=$?
	((rc != 0)) || wait_ready "http://127.0.0.1:$port/readyz" "$mandate_pid" $((deadline - SECONDS)) || rc=$?
	case $rc in
	0)
		mandate_url=http://127.0.0.1:$port$MANDATE_PATH
		say "-- mandate: pid $mandate_pid, $mandate_url"
		return 0
		;;
	1) launch_problem="mandate serve was not listening and ready on 127.0.0.1:$port within ${START_TIMEOUT}s" ;;
	*) launch_problem="mandate serve exited before listening on 127.0.0.1:$port" ;;
	esac
	stop "$mandate_pid"
	return 1
}

# start_mandate writes an `auth: none` config for the running
# everything-server and starts `mandate serve` with it, as launch_mandate
# does; on failure it sets mandate_problem.
start_mandate() {
	local port cfg data
	port=$(free_port "$ev_port") || { mandate_problem="no free port"; return 1; }
	cfg=$work/mandate.yaml
	data=$(mktemp -d "$work/data.XXXXXX")
	cat >"$cfg" <<EOF
listen: 127.0.0.1:$port
data_dir: $data
# Without authentication Mandate decides with the built-in allow-all policy
# and looks up no mandates: the proxy's own overhead.
auth: {mode: none}
http:
  # The idle run opens IDLE_SESSIONS sessions from one address.
  max_sessions_per_client: $((IDLE_SESSIONS + 64))
upstreams:
  - id: ev
    prefix: ""
    http: {url: "$ev_url"}
EOF
	launch_mandate "$cfg" "$port" || { mandate_problem=$launch_problem; return 1; }
}

# start_policy_mandate starts `mandate serve` as an authenticated deployment
# runs it, for the policy runs: auth mode external, trusting an `mcpload
# issuer` on 127.0.0.1 whose access token names the user "bench" (by user
# id) and the agent "mcpload"; the built-in default policy, which applies
# because policy.dir is empty and auth is not none; and one mandate by
# which the user lets the agent call $TOOL on the everything-server. It sets
# mandate_pid, mandate_url and issuer_pid, or policy_problem.
#
# The agent must be registered before the CLI grants it a mandate, and an
# external agent is registered when Mandate first sees it, so one session
# is opened before the grant. Mandates are read on every call, so granting
# while Mandate runs takes effect at once.
start_policy_mandate() {
	local port iss_port cfg data out uid rc=0
	port=$(free_port "$ev_port") || { policy_problem="no free port"; return 1; }
	iss_port=$(free_port "$port") || { policy_problem="no free port"; return 1; }
	cfg=$work/mandate-policy.yaml
	data=$(mktemp -d "$work/data.XXXXXX")
	cat >"$cfg" <<EOF
listen: 127.0.0.1:$port
data_dir: $data
auth:
  mode: external
  issuers:
    - issuer: http://127.0.0.1:$iss_port
      jwks_url: http://127.0.0.1:$iss_port/jwks
http:
  max_sessions_per_client: $((IDLE_SESSIONS + 64))
upstreams:
  - id: ev
    prefix: ""
    http: {url: "$ev_url"}
EOF
	# A local account gives the user an id; its password is never used.
	printf 'bench-%s-%s-password\n' "$RANDOM" "$RANDOM" >"$work/password"
	if ! out=$(timeout 60 "$bin/mandate" users add bench --config "$cfg" --password-file "$work/password" 2>&1); then
		policy_problem="mandate users add failed: $out"
		return 1
	fi
	uid=$(sed -n 's/^added user bench (id \(.*\))$/\1/p' <<<"$out")
	[[ -n $uid ]] || { policy_problem="cannot read the user id from: $out"; return 1; }

	rm -f "$work/token"
	"$bin/mcpload" issuer -listen "127.0.0.1:$iss_port" -out "$work/token" -sub "$uid" -client-id mcpload \
		-aud "http://127.0.0.1:$port/mcp" -ttl 2h >"$work/issuer.log" 2>&1 &
	issuer_pid=$!
	started+=("$issuer_pid")
	wait_port "$iss_port" "$issuer_pid" 10 || rc=$?
	if ((rc != 0)) || [[ ! -s $work/token ]]; then
		policy_problem="mcpload issuer did not start on 127.0.0.1:$iss_port: $(tr '\n' ' ' <"$work/issuer.log")"
		return 1
	fi
	say "-- issuer: pid $issuer_pid, http://127.0.0.1:$iss_port (user bench, id $uid; agent mcpload)"

	launch_mandate "$cfg" "$port" || { policy_problem=$launch_problem; return 1; }
	if ! "$bin/mcpload" -url "$mandate_url" -token-file "$work/token" -idle 1 -settle 0 -json \
		>"$work/policy-register.json" 2>"$work/policy-register.err"; then
		policy_problem="the agent's first session was refused: $(jq -r '.first_error // empty' "$work/policy-register.json" 2>/dev/null) $(tr '\n' ' ' <"$work/policy-register.err")"
		return 1
	fi
	if ! out=$(timeout 60 "$bin/mandate" mandates grant --config "$cfg" --user bench --agent mcpload \
		--upstream ev --tool "$TOOL" --purpose "bench/run.sh policy runs" --expires 2h 2>&1); then
		policy_problem="mandate mandates grant failed: $out"
		return 1
	fi
	say "-- $out"
}

if ((mandate_ok)) && start_mandate; then
	if ! load mandate-1 "$mandate_url" 1 -pid "$mandate_pid" ||
		! load mandate-16 "$mandate_url" 16 -pid "$mandate_pid"; then
		mandate_ok=0
		mandate_problem="load through Mandate failed (see above)"
	fi
	stop "$mandate_pid"
else
	mandate_ok=0
fi

# The policy runs follow the allow-all runs at once, 16 sessions first, so
# that the two runs the throughput ratio compares see the same background
# load as nearly as possible.
policy_ok=0
policy_problem=
issuer_pid=
if ((mandate_ok)); then
	say "-- restarting mandate with authentication, the default policy and a mandate"
	mandate_pid=
	if start_policy_mandate; then
		if load policy-16 "$mandate_url" 16 -pid "$mandate_pid" -token-file "$work/token" &&
			load policy-1 "$mandate_url" 1 -pid "$mandate_pid" -token-file "$work/token"; then
			policy_ok=1
		else
			policy_problem="load through Mandate with policy failed (see above)"
		fi
	fi
	to_stop=()
	[[ -n $mandate_pid ]] && kill -0 "$mandate_pid" 2>/dev/null && to_stop+=("$mandate_pid")
	[[ -n $issuer_pid ]] && kill -0 "$issuer_pid" 2>/dev/null && to_stop+=("$issuer_pid")
	((${#to_stop[@]} == 0)) || stop "${to_stop[@]}"
fi

# The idle run gets a fresh Mandate: a process that has just served the load
# runs keeps freed heap resident, which would hide part of the cost of new
# sessions.
((mandate_ok)) && say "-- restarting mandate for the idle run"
if ((mandate_ok)) && start_mandate; then
	say "-- mandate-idle: $IDLE_SESSIONS idle sessions, settle $SETTLE"
	rc=0
	"$bin/mcpload" -url "$mandate_url" -idle "$IDLE_SESSIONS" -settle "$SETTLE" -pid "$mandate_pid" -json \
		>"$work/mandate-idle.json" 2>"$work/mandate-idle.err" || rc=$?
	if [[ ! -s $work/mandate-idle.json ]]; then
		warn "idle run: mcpload exited $rc without a report:"
		sed 's/^/    /' "$work/mandate-idle.err" >&2
		rm -f "$work/mandate-idle.json"
	elif ((rc != 0)); then
		warn "idle run: $(jq -r '"opened \(.opened) of \(.sessions); next failed: \(.first_error // "-")"' "$work/mandate-idle.json")"
	fi
	stop "$mandate_pid"
elif ((mandate_ok)); then
	mandate_ok=0
fi

say
say "== results (tool $TOOL; CPU and peak RSS are the target's: the everything-server for direct runs, Mandate for the others)"
table
if [[ -f $work/mandate-idle.json ]]; then
	jq -r '"idle: \(.opened) of \(.sessions) sessions opened in \(.open_s * 10 | round / 10) s; Mandate RSS \(.rss_before_kib) -> \(.rss_after_kib) KiB"' \
		"$work/mandate-idle.json"
fi
say

# mandate_log_tail prints the end of Mandate's log to stderr.
mandate_log_tail() {
	if [[ -s $work/mandate.log ]]; then
		warn "last lines of the mandate log:"
		tail -n 20 "$work/mandate.log" | sed 's/^/    /' >&2
	fi
}

if ((!mandate_ok)); then
	warn "MANDATE NOT MEASURED: ${mandate_problem:-unknown problem}"
	mandate_log_tail
	exit 1
fi

say "== summary against targets"
summary
if ((!policy_ok)); then
	say
	warn "POLICY RUNS NOT MEASURED: ${policy_problem:-unknown problem}"
	mandate_log_tail
	exit 1
fi
if ((missed)) && [[ $STRICT == 1 ]]; then
	exit 3
fi
