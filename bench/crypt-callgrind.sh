#!/usr/bin/env bash
# bench/crypt-callgrind.sh: what encryption at rest costs, in instructions
# (valgrind --tool=callgrind), which a shared machine does not blur.
# Ingest: `careweave import` of the first five bench data set files
# (4,667 resources), with and without a key. Read by id: a server on each
# database, every "read Patient" path fetched twice (a cold pass: pages
# come from the file, and are opened; a warm pass: from SQLite's cache),
# instructions counted around each pass only (callgrind_control).
# Needs bench/out of a `make bench` run (or BENCH_OUT=dir). CG_QUICK=1:
# only the Patients (1,326) for both.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${CAREWEAVE_BIN:-$ROOT/build/rel/careweave}
SRC=${BENCH_OUT:-$ROOT/bench/out}
WORK=$(mktemp -d /tmp/careweave-crypt-cg.XXXXXX)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; wait 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
FILES=("$SRC"/dataset/0[1-5]-*.ndjson)
[ -n "${CG_QUICK:-}" ] && FILES=("$SRC"/dataset/05-*.ndjson)
N=$(cat "${FILES[@]}" | wc -l)
PATHS=$SRC/paths/read-patient.txt
NREAD=$(wc -l <"$PATHS")
"$BIN" key new "$WORK/db.key" >/dev/null
with_key() { local m=$1; shift; if [ "$m" = enc ]; then CAREWEAVE_KEY_FILE=$WORK/db.key "$@"; else env -u CAREWEAVE_KEY_FILE "$@"; fi; }
ir() { callgrind_annotate "$1" 2>/dev/null | awk '/PROGRAM TOTALS/ && !n { gsub(",", "", $1); print $1; n = 1 }'; }
echo "== crypt-callgrind $(date -u +%FT%TZ), commit $(git -C "$ROOT" rev-parse --short=12 HEAD)"
for m in plain enc; do
	db=$WORK/$m.db
	with_key "$m" valgrind --tool=callgrind --callgrind-out-file="$WORK/import-$m.cg" \
		"$BIN" import --quiet --db "$db" "${FILES[@]}" >/dev/null 2>"$WORK/import-$m.log"
	i=$(ir "$WORK/import-$m.cg")
	echo "ingest $m: $i instructions for $N resources = $((i / N)) per resource"
done
for m in plain enc; do
	db=$WORK/$m.db pw=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
	printf '%s\n' "$pw" | with_key "$m" "$BIN" user add --db "$db" --username cg --role service \
		--system-client --password-stdin >/dev/null
	with_key "$m" env CAREWEAVE_LOG=warn valgrind --tool=callgrind --instr-atstart=no \
		--callgrind-out-file="$WORK/read-$m.cg" "$BIN" serve --db "$db" --port 0 \
		--bind 127.0.0.1 --threads 1 >"$WORK/serve-$m.log" 2>&1 &
	# $! is the backgrounded shell function; callgrind_control wants valgrind
	for _ in $(seq 100); do
		PID=$(pgrep -f "callgrind-out-file=$WORK/read-$m.cg" | sed -n 1p || true)
		[ -n "$PID" ] && break
		sleep 0.1
	done
	BASE=""
	for _ in $(seq 1200); do BASE=$(grep -o -m1 'http://[^ ]*/fhir' "$WORK/serve-$m.log" || true); [ -n "$BASE" ] && break; sleep 0.1; done
	ORIGIN=${BASE%/fhir}
	TOKEN=$(curl -s -X POST -H 'Content-Type: application/json' -d "{\"username\":\"cg\",\"password\":\"$pw\"}" \
		"$ORIGIN/auth/login" | sed -E 's/.*"token":"([0-9a-f]+)".*/\1/')
	for pass in cold warm; do
		callgrind_control -z "$PID" >/dev/null
		callgrind_control -i on "$PID" >/dev/null
		ORIGIN=$ORIGIN TOKEN=$TOKEN node -e '
			const paths = require("fs").readFileSync(process.argv[1], "utf8").split("\n").filter(Boolean);
			(async () => { let bad = 0;
				for (const p of paths) { const r = await fetch(process.env.ORIGIN + p, { headers: { authorization: "Bearer " + process.env.TOKEN } }); await r.text(); if (r.status !== 200) bad++; }
				if (bad) { console.error(bad + " reads failed"); process.exit(1); } })();' "$PATHS"
		callgrind_control -i off "$PID" >/dev/null
		callgrind_control -d "$pass" "$PID" >/dev/null
		f=""
		for _ in $(seq 600); do # the dump is written when valgrind gets to it
			f=$(ls -t "$WORK"/read-$m.cg.* 2>/dev/null | sed -n 1p || true)
			[ -n "$f" ] && break
			sleep 0.1
		done
		sleep 2
		i=$(ir "$f")
		echo "read   $m $pass: $i instructions for $NREAD reads = $((i / NREAD)) per read"
		rm -f "$f"
	done
	kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
done
