#!/usr/bin/env bash
# bench/crypt-ab.sh: what encryption at rest costs (bench/README.md,
# "Encryption at rest"). Ingest: `careweave import` of the bench data set
# into a fresh database, with a key and without, in alternating rounds.
# Read by id: the same two databases served one after the other, wrk on
# the "read Patient" path list, alternating rounds. Prints every round, so
# the spread on a noisy machine shows.
#
# Needs the data set and path lists of a `make bench` run (bench/out, or
# BENCH_OUT=dir). Environment: AB_ROUNDS (3), AB_DURATION (5s), AB_CONNS (32).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${CAREWEAVE_BIN:-$ROOT/build/rel/careweave}
SRC=${BENCH_OUT:-$ROOT/bench/out}
ROUNDS=${AB_ROUNDS:-3}
DUR=${AB_DURATION:-5s}
CONNS=${AB_CONNS:-32}
WORK=$(mktemp -d /tmp/careweave-crypt-ab.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
[ -f "$SRC/manifest.json" ] || { echo "crypt-ab: no $SRC/manifest.json (run make bench once)" >&2; exit 1; }
mapfile -t FILES < <(node -e 'const m=require(process.argv[1]);for(const f of m.datasetFiles)console.log(f)' "$SRC/manifest.json")
TOTAL=$(node -e 'console.log(require(process.argv[1]).total)' "$SRC/manifest.json")
args=(); for f in "${FILES[@]}"; do args+=("$SRC/$f"); done
"$BIN" key new "$WORK/db.key" >/dev/null
echo "== crypt-ab $(date -u +%FT%TZ), commit $(git -C "$ROOT" rev-parse --short=12 HEAD), $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"

# with_key MODE CMD...: runs CMD with the key in the environment when MODE is enc
with_key() { local m=$1; shift; if [ "$m" = enc ]; then CAREWEAVE_KEY_FILE=$WORK/db.key "$@"; else env -u CAREWEAVE_KEY_FILE "$@"; fi; }

echo "== ingest: careweave import, $TOTAL resources"
for r in $(seq "$ROUNDS"); do
	order="plain enc"; [ $((r % 2)) = 0 ] && order="enc plain"
	for m in $order; do
		db=$WORK/$m.db; rm -f "$db" "$db-wal" "$db-shm"
		t0=$(date +%s.%N)
		with_key "$m" "$BIN" import --quiet --db "$db" "${args[@]}" >/dev/null 2>"$WORK/import.log" || { tail "$WORK/import.log"; exit 1; }
		t1=$(date +%s.%N)
		awk -v m="$m" -v r="$r" -v a="$t0" -v b="$t1" -v n="$TOTAL" -v l="$(cut -d' ' -f1 /proc/loadavg)" \
			'BEGIN { printf "ingest %-5s round %d: %6.1f s  %6.0f resources/s  (load %s)\n", m, r, b - a, n / (b - a), l }'
	done
done
ls -l "$WORK"/plain.db "$WORK"/enc.db | awk '{print "size " $9 ": " $5}'

echo "== read Patient by id: wrk -t2 -c$CONNS -d$DUR"
serve() { # MODE -> PID, BASE, TOKEN
	local m=$1 db=$WORK/$1.db pw; pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	printf '%s\n' "$pw" | with_key "$m" "$BIN" user add --db "$db" --username "ab-$m-$r" --role service \
		--system-client --password-stdin >/dev/null
	with_key "$m" env CAREWEAVE_LOG=warn "$BIN" serve --db "$db" --port 0 --bind 127.0.0.1 >"$WORK/serve.log" 2>&1 &
	PID=$!
	for _ in $(seq 300); do BASE=$(grep -o -m1 'http://[^ ]*/fhir' "$WORK/serve.log" || true); [ -n "$BASE" ] && break; sleep 0.1; done
	TOKEN=$(curl -s -X POST -H 'Content-Type: application/json' -d "{\"username\":\"ab-$m-$r\",\"password\":\"$pw\"}" \
		"${BASE%/fhir}/auth/login" | sed -E 's/.*"token":"([0-9a-f]+)".*/\1/')
}
for r in $(seq "$ROUNDS"); do
	order="plain enc"; [ $((r % 2)) = 0 ] && order="enc plain"
	for m in $order; do
		serve "$m"
		# warm the page cache and the server's own caches first
		BENCH_PATHS=$SRC/paths/read-patient.txt BENCH_TOKEN=$TOKEN wrk -t2 -c"$CONNS" -d2s -s "$ROOT/bench/wrk-list.lua" "${BASE%/fhir}" >/dev/null
		out=$(BENCH_PATHS=$SRC/paths/read-patient.txt BENCH_TOKEN=$TOKEN wrk -t2 -c"$CONNS" -d"$DUR" --latency -s "$ROOT/bench/wrk-list.lua" "${BASE%/fhir}")
		rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
		p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
		p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
		non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
		printf 'read   %-5s round %d: %9s req/s  p50 %s  p99 %s%s  (load %s)\n' "$m" "$r" "$rps" "$p50" "$p99" \
			"${non2xx:+  non-2xx $non2xx}" "$(cut -d' ' -f1 /proc/loadavg)"
		kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
	done
done
