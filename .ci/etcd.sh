#!/usr/bin/env bash
# etcd.sh runs a real etcd for fxsh's etcd catalog tests (store/etcdcat).
#
#   bash .ci/etcd.sh install      build etcd v3.6 from tools/etcd (cached; idempotent);
#                                 falls back to Debian's etcd-server if the build fails
#   bash .ci/etcd.sh start DIR    start etcd on a free loopback port with its data in DIR,
#                                 wait until it is healthy, print lines for eval:
#                                   FXSH_ETCD_ENDPOINTS=127.0.0.1:PORT
#                                   ETCD_PID=N
#   bash .ci/etcd.sh stop PID     stop it (TERM, then KILL after 10 s)
#
# Environment: FXSH_ETCD_BIN overrides where the built binary lives;
# FXSH_ETCD_FSYNC=1 keeps fsync on (by default the test instance skips it,
# which is safe for throwaway data and much faster on a shared CI disk).
# Only the two lines above go to stdout; everything else goes to stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TOOLS="$ROOT/tools/etcd"
VERSION=$(awk '$1 == "require" && $2 == "go.etcd.io/etcd/server/v3" { print $3 }' "$TOOLS/go.mod")
VERSION=${VERSION:-v3.6.16}
BIN=${FXSH_ETCD_BIN:-${XDG_CACHE_HOME:-$HOME/.cache}/fxsh/etcd-$VERSION/etcd}

log() { echo "etcd.sh: $*" >&2; }

# etcd_bin prints the etcd to run: ours if built, else a system one.
etcd_bin() {
	if [[ -x "$BIN" ]]; then
		echo "$BIN"
	elif command -v etcd >/dev/null 2>&1; then
		command -v etcd
	else
		log "no etcd: run 'bash .ci/etcd.sh install' first"
		return 1
	fi
}

cmd_install() {
	if [[ -x "$BIN" ]] && "$BIN" --version 2>/dev/null | grep -q "etcd Version: ${VERSION#v}\$"; then
		log "etcd $VERSION already built at $BIN"
		return 0
	fi
	mkdir -p "$(dirname "$BIN")"
	log "building etcd $VERSION from $TOOLS (a minute or two the first time)"
	if (cd "$TOOLS" && GOWORK=off GOFLAGS="-mod=readonly -buildvcs=false" go build -trimpath -o "$BIN.tmp" .) >&2; then
		mv -f "$BIN.tmp" "$BIN"
		"$BIN" --version >&2
		return 0
	fi
	rm -f "$BIN.tmp"
	log "go build failed; falling back to Debian's etcd-server"
	if command -v etcd >/dev/null 2>&1; then
		return 0
	fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2 && apt-get install -y etcd-server >&2 </dev/null
	# Debian's package starts a system service; tests use their own instance.
	if command -v systemctl >/dev/null 2>&1; then systemctl disable --now etcd >/dev/null 2>&1 || true; fi
}

# port_free reports whether nothing listens on 127.0.0.1:$1.
port_free() {
	! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# healthy reports whether etcd on port $1 answers /health with true.
healthy() {
	local body
	if command -v curl >/dev/null 2>&1; then
		body=$(curl -fsS --max-time 2 "http://127.0.0.1:$1/health" 2>/dev/null) || return 1
	else
		body=$(exec 3<>"/dev/tcp/127.0.0.1/$1" &&
			printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
			timeout 2 cat <&3) 2>/dev/null || return 1
	fi
	[[ $body == *'"health":"true"'* ]]
}

cmd_start() {
	local dir=${1:?usage: etcd.sh start DIR}
	local bin
	bin=$(etcd_bin)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	local extra=(--unsafe-no-fsync)
	[[ ${FXSH_ETCD_FSYNC:-0} == 1 ]] && extra=()
	"$bin" --help 2>&1 | grep -q -- '--unsafe-no-fsync' || extra=()

	local try
	for try in 1 2 3 4 5; do
		local port=$((20000 + RANDOM % 20000)) peer
		peer=$((port + 1))
		port_free "$port" && port_free "$peer" || continue
		rm -rf "$dir/data"
		"$bin" --name fxsh --data-dir "$dir/data" \
			--listen-client-urls "http://127.0.0.1:$port" \
			--advertise-client-urls "http://127.0.0.1:$port" \
			--listen-peer-urls "http://127.0.0.1:$peer" \
			--initial-advertise-peer-urls "http://127.0.0.1:$peer" \
			--initial-cluster "fxsh=http://127.0.0.1:$peer" \
			--log-level warn "${extra[@]}" \
			>"$dir/etcd.log" 2>&1 </dev/null &
		local pid=$!
		local i
		for i in $(seq 1 300); do # 30 s
			if ! kill -0 "$pid" 2>/dev/null; then
				log "etcd exited early (try $try); log:"
				tail -5 "$dir/etcd.log" >&2 || true
				break
			fi
			if healthy "$port"; then
				echo "FXSH_ETCD_ENDPOINTS=127.0.0.1:$port"
				echo "ETCD_PID=$pid"
				log "etcd $("$bin" --version | awk '/etcd Version/ { print $3 }') healthy on 127.0.0.1:$port (pid $pid, data $dir/data)"
				return 0
			fi
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	log "could not start etcd"
	return 1
}

cmd_stop() {
	local pid=${1:?usage: etcd.sh stop PID}
	[[ $pid =~ ^[0-9]+$ ]] || { log "bad pid $pid"; return 1; }
	kill -TERM "$pid" 2>/dev/null || return 0
	local i
	for i in $(seq 1 100); do # 10 s
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "etcd $pid did not stop on TERM; killing"
	kill -KILL "$pid" 2>/dev/null || true
}

case ${1:-} in
install) cmd_install ;;
start) cmd_start "${2:-}" ;;
stop) cmd_stop "${2:-}" ;;
*)
	echo "usage: etcd.sh install | start DIR | stop PID" >&2
	exit 2
	;;
esac
