#!/usr/bin/env bash
# bench/run.sh measures what Mandate adds in front of an MCP server: it runs
# the same tools/call load directly against the Go SDK's conformance
# everything-server, then through `mandate serve` without authentication
# (allow-all), once with the audit log off and once with it on, then through
# `mandate serve` with authentication, the default policy, the audit log on
# (the default) and a mandate covering the tool. It compares latency,
# throughput, Mandate's CPU time per call and its memory per idle session
# with the project's targets, and what the audit log adds with the audit
# log's. See bench/README.md for how to read the output.
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
#   POLICY_AUDIT=on         audit log of the policy runs (on|off); the policy
#                           ratio compares with the allow-all runs of the same
#                           setting
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
POLICY_AUDIT=${POLICY_AUDIT:-on}
[[ $POLICY_AUDIT == on || $POLICY_AUDIT == off ]] || { echo "POLICY_AUDIT must be on or off" >&2; exit 2; }

# Targets, from the design: added median latency with one session (ms),
# throughput through Mandate relative to direct with 16 sessions (%),
# Mandate CPU per forwarded call (µs), Mandate RSS per idle session (KiB),
# all four measured with the audit log off, so that they measure the proxy
# alone; throughput with the default policy and a mandate relative to
# allow-all with 16 sessions (%), both with the audit log on; and the median
# latency the audit log adds with 16 sessions (µs).
TARGET_ADDED_P50_MS=0.3
TARGET_THROUGHPUT_PCT=75
TARGET_CPU_US=60
TARGET_IDLE_KIB=64
TARGET_POLICY_PCT=85
TARGET_AUDIT_P50_US=50

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
		printf '%-31s %s\n' "$1" "not measured"
		return
	fi
	jq -r '[.calls, .calls_per_s, .p50_ms, .p99_ms, .p999_ms, .errors,
	        (.cpu_us_per_call // "-"), (.peak_rss_kib // "-")] | @tsv' "$f" |
		awk -F'\t' -v l="$1" '{
			cpu = ($7 == "-") ? "-" : sprintf("%.1f", $7)
			printf "%-31s %8d %9.1f %8.3f %8.3f %8.3f %6d %10s %10s\n", l, $1, $2, $3, $4, $5, $6, cpu, $8
		}'
}

table() {
	printf '%-31s %8s %9s %8s %8s %8s %6s %10s %10s\n' \
		run calls calls/s "p50 ms" "p99 ms" "p99.9 ms" errors "CPU us/call" "peak KiB"
	row "direct, 1 session" direct-1
	row "direct, 16 sessions" direct-16
	row "mandate, audit off, 1 session" mandate-1
	row "mandate, audit off, 16 sessions" mandate-16
	row "mandate, audit on, 1 session" mandate-audit-1
	row "mandate, audit on, 16 sessions" mandate-audit-16
	row "policy, audit $POLICY_AUDIT, 1 session" policy-1
	row "policy, audit $POLICY_AUDIT, 16 sessions" policy-16
}

# verdict MEASURED OP TARGET prints ok or MISSED; OP is <= or >=.
verdict() {
	if awk -v m="$1" -v t="$3" -v op="$2" 'BEGIN { exit !((op == "<=") ? m <= t : m >= t) }'; then
		say ok
	else
		say MISSED
	fi
}

# calc A B EXPR evaluates the jq expression EXPR over the reports
# $work/A.json (as $a) and $work/B.json (as $b), or prints nan when either
# is missing.
calc() {
	if [[ -f $work/$1.json && -f $work/$2.json ]]; then
		jq -n --slurpfile a "$work/$1.json" --slurpfile b "$work/$2.json" "$3"
	else
		say nan
	fi
}

missed=0
# The policy runs are compared with the allow-all runs of the same audit
# setting, so the ratio is the policy's cost alone.
policy_base=mandate-audit-16
[[ $POLICY_AUDIT == off ]] && policy_base=mandate-16
summary() {
	local kib=nan cpu16=nan
	[[ -f $work/mandate-idle.json ]] && kib=$(jq -r '.kib_per_session // "nan"' "$work/mandate-idle.json")
	[[ -f $work/mandate-16.json ]] && cpu16=$(jq -r '.cpu_us_per_call // "nan"' "$work/mandate-16.json")
	local pct='if $b[0].calls_per_s > 0 then 100 * $a[0].calls_per_s / $b[0].calls_per_s else 0 end'
	local cpu='if $a[0].cpu_us_per_call == null or $b[0].cpu_us_per_call == null then "nan"
	           else $a[0].cpu_us_per_call - $b[0].cpu_us_per_call end'

	# NAME|VALUE|UNIT|OP|TARGET; OP - is a figure without a target.
	local -a lines=(
		"added median latency, 1 session, audit off|$(calc mandate-1 direct-1 '$a[0].p50_ms - $b[0].p50_ms')|ms|<=|$TARGET_ADDED_P50_MS"
		"throughput through/direct, 16 sessions, audit off|$(calc mandate-16 direct-16 "$pct")|%|>=|$TARGET_THROUGHPUT_PCT"
		"Mandate CPU per forwarded call, audit off|$cpu16|us|<=|$TARGET_CPU_US"
		"Mandate RSS per idle session, audit off|$kib|KiB|<=|$TARGET_IDLE_KIB"
		"throughput policy/allow-all, 16 sessions, audit $POLICY_AUDIT|$(calc policy-16 "$policy_base" "$pct")|%|>=|$TARGET_POLICY_PCT"
		"audit: added median latency, 16 sessions|$(calc mandate-audit-16 mandate-16 '1000 * ($a[0].p50_ms - $b[0].p50_ms)')|us|<=|$TARGET_AUDIT_P50_US"
		"audit: throughput on/off, 16 sessions|$(calc mandate-audit-16 mandate-16 "$pct")|%|-|-"
		"audit: added Mandate CPU per call, 16 sessions|$(calc mandate-audit-16 mandate-16 "$cpu")|us|-|-"
		"audit: added median latency, 1 session|$(calc mandate-audit-1 mandate-1 '1000 * ($a[0].p50_ms - $b[0].p50_ms)')|us|-|-"
	)
	printf '%-56s %10s  %-8s %s\n' metric measured target verdict
	local l name value unit op target v sym
	for l in "${lines[@]}"; do
		IFS='|' read -r name value unit op target <<<"$l"
		value=${value//\"/}
		case $op in
		"<=") sym="≤" ;;
		">=") sym="≥" ;;
		*) sym=" " ;;
		esac
		if [[ $value == nan ]]; then
			value="-"
			v=MISSED
		elif [[ $op == - ]]; then
			v=-
		else
			v=$(verdict "$value" "$op" "$target")
		fi
		# A figure without a target is never missed, even when unmeasured.
		[[ $op == - ]] && v=-
		[[ $v == MISSED ]] && missed=1
		[[ $value == - ]] || value=$(awk -v x="$value" 'BEGIN { printf "%.3f", x }')
		printf '%-56s %10s  %s %-6s %s\n' "$name ($unit)" "$value" "$sym" "$target" "$v"
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

# launch_mandate CFG PORT LOG WHAT starts `mandate serve` with CFG on PORT,
# logging to $work/LOG (WHAT describes it in the output), and sets
# mandate_pid, mandate_url and mandate_log, or sets launch_problem and
# returns 1.
launch_mandate() {
	local cfg=$1 port=$2 rc=0
	mandate_log=$work/$3
	"$bin/mandate" serve --config "$cfg" --listen "127.0.0.1:$port" >>"$mandate_log" 2>&1 &
	mandate_pid=$!
	started+=("$mandate_pid")
	local deadline=$((SECONDS + START_TIMEOUT))
	wait_port "$port" "$mandate_pid" "$START_TIMEOUT" || rc=$?
	((rc != 0)) || wait_ready "http://127.0.0.1:$port/readyz" "$mandate_pid" $((deadline - SECONDS)) || rc=$?
	case $rc in
	0)
		mandate_url=http://127.0.0.1:$port$MANDATE_PATH
		say "-- mandate ($4): pid $mandate_pid, $mandate_url"
		return 0
		;;
	1) launch_problem="mandate serve was not listening and ready on 127.0.0.1:$port within ${START_TIMEOUT}s" ;;
	*) launch_problem="mandate serve exited before listening on 127.0.0.1:$port" ;;
	esac
	stop "$mandate_pid"
	return 1
}

# start_mandate AUDIT NAME writes an `auth: none` config NAME.yaml for the
# running everything-server, with the audit log on or off (AUDIT is true or
# false) in a SQLite store in a fresh data directory, and starts `mandate
# serve` with it, logging to NAME.log, as launch_mandate does (setting
# launch_problem on failure).
start_mandate() {
	local audit=$1 name=$2 port cfg data
	port=$(free_port "$ev_port") || { launch_problem="no free port"; return 1; }
	cfg=$work/$name.yaml
	data=$(mktemp -d "$work/data.XXXXXX")
	cat >"$cfg" <<EOF
listen: 127.0.0.1:$port
data_dir: $data
store: {driver: sqlite}        # $data/mandate.db
# Without authentication Mandate decides with the built-in allow-all policy
# and looks up no mandates: the proxy's own overhead, plus the audit log's
# when it is on (it is on by default, also with auth: none).
auth: {mode: none}
audit: {enabled: $audit}
http:
  # The idle run opens IDLE_SESSIONS sessions from one address.
  max_sessions_per_client: $((IDLE_SESSIONS + 64))
upstreams:
  - id: ev
    prefix: ""
    http: {url: "$ev_url"}
EOF
	launch_mandate "$cfg" "$port" "$name.log" "allow-all, audit $([[ $audit == true ]] && say on || say off)"
}

# start_policy_mandate starts `mandate serve` as an authenticated deployment
# runs it, for the policy runs: auth mode external, trusting an `mcpload
# issuer` on 127.0.0.1 whose access token names the user "bench" (by user
# id) and the agent "mcpload"; the built-in default policy, which applies
# because policy.dir is empty and auth is not none; the audit log as it is
# by default, on, in the SQLite store; and one mandate by which the user
# lets the agent call $TOOL on the everything-server. It sets mandate_pid,
# mandate_url, mandate_log and issuer_pid, or policy_problem.
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
store: {driver: sqlite}        # $data/mandate.db
$(if [[ $POLICY_AUDIT == off ]]; then echo "audit: {enabled: false}"; else echo "# No audit section: the audit log is on, as it is by default."; fi)
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

	launch_mandate "$cfg" "$port" mandate-policy.log "default policy, audit $POLICY_AUDIT" ||
		{ policy_problem=$launch_problem; return 1; }
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

# The allow-all Mandate with the audit log off (the proxy alone, which the
# direct-versus-Mandate targets measure), the allow-all Mandate with the
# audit log on and the authenticated Mandate with the default policy (audit
# log on, as by default) run side by side, each idle while another one is
# measured. That lets the runs each comparison pairs follow each other
# directly, so that they see the same background load as nearly as
# possible: with 16 sessions audit off, audit on and policy come one after
# the other. The 1-session runs come first, so that no peak RSS of a
# 1-session row is a 16-session run's.
off_pid= off_url= audit_pid= audit_url= policy_pid= policy_url= issuer_pid=
audit_ok=0 audit_problem= audit_log=
policy_ok=0 policy_problem= policy_log=
off_log=$work/mandate.log
if ((mandate_ok)) && start_mandate false mandate; then
	off_pid=$mandate_pid off_url=$mandate_url off_log=$mandate_log
else
	((mandate_ok)) && mandate_problem=$launch_problem
	off_log=${mandate_log:-$off_log}
	mandate_ok=0
fi
if ((mandate_ok)); then
	mandate_log=
	if start_mandate true mandate-audit; then
		audit_pid=$mandate_pid audit_url=$mandate_url audit_ok=1
	else
		audit_problem=$launch_problem
	fi
	audit_log=$mandate_log

	say "-- starting mandate with authentication, the default policy, audit on and a mandate"
	mandate_pid= mandate_log=
	if start_policy_mandate; then
		policy_pid=$mandate_pid policy_url=$mandate_url policy_ok=1
	fi
	policy_log=$mandate_log
	[[ -n $mandate_pid ]] && kill -0 "$mandate_pid" 2>/dev/null && policy_pid=$mandate_pid

	for n in 1 16; do
		if ((mandate_ok)) && ! load "mandate-$n" "$off_url" "$n" -pid "$off_pid"; then
			mandate_ok=0
			mandate_problem="load through Mandate failed (see above)"
		fi
		if ((mandate_ok && audit_ok)) && ! load "mandate-audit-$n" "$audit_url" "$n" -pid "$audit_pid"; then
			audit_ok=0
			audit_problem="load through Mandate with the audit log on failed (see above)"
		fi
		if ((mandate_ok && policy_ok)) &&
			! load "policy-$n" "$policy_url" "$n" -pid "$policy_pid" -token-file "$work/token"; then
			policy_ok=0
			policy_problem="load through Mandate with policy failed (see above)"
		fi
	done
	to_stop=()
	for p in "$off_pid" "$audit_pid" "$policy_pid" "$issuer_pid"; do
		[[ -n $p ]] && kill -0 "$p" 2>/dev/null && to_stop+=("$p")
	done
	((${#to_stop[@]} == 0)) || stop "${to_stop[@]}"
fi
((mandate_ok)) || { audit_ok=0 policy_ok=0; }

# The idle run gets a fresh Mandate, with the audit log off like the other
# runs the direct-versus-Mandate targets use: a process that has just served
# the load runs keeps freed heap resident, which would hide part of the cost
# of new sessions.
((mandate_ok)) && say "-- starting a fresh mandate for the idle run"
mandate_log=
if ((mandate_ok)) && start_mandate false mandate-idle; then
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
	mandate_problem=$launch_problem
	off_log=$mandate_log
fi

say
say "== results (tool $TOOL; CPU and peak RSS are the target's: the everything-server for direct runs, Mandate for the others;"
say "   mandate: auth none, allow-all policy; policy: external tokens, default policy, a mandate; SQLite store throughout)"
table
if [[ -f $work/mandate-idle.json ]]; then
	jq -r '"idle: \(.opened) of \(.sessions) sessions opened in \(.open_s * 10 | round / 10) s; Mandate RSS \(.rss_before_kib) -> \(.rss_after_kib) KiB"' \
		"$work/mandate-idle.json"
fi
say

# mandate_log_tail FILE prints the end of a Mandate log to stderr.
mandate_log_tail() {
	if [[ -n ${1:-} && -s $1 ]]; then
		warn "last lines of $(basename "$1"):"
		tail -n 20 "$1" | sed 's/^/    /' >&2
	fi
}

if ((!mandate_ok)); then
	warn "MANDATE NOT MEASURED: ${mandate_problem:-unknown problem}"
	mandate_log_tail "$off_log"
	exit 1
fi

say "== summary against targets (audit off: the proxy alone, as before the audit log; audit on: its default)"
summary
failed=0
if ((!audit_ok)); then
	say
	warn "AUDIT RUNS NOT MEASURED: ${audit_problem:-unknown problem}"
	mandate_log_tail "$audit_log"
	failed=1
fi
if ((!policy_ok)); then
	say
	warn "POLICY RUNS NOT MEASURED: ${policy_problem:-unknown problem}"
	mandate_log_tail "$policy_log"
	failed=1
fi
((failed == 0)) || exit 1
if ((missed)) && [[ $STRICT == 1 ]]; then
	exit 3
fi
