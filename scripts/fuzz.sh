#!/usr/bin/env bash
# scripts/fuzz.sh SECONDS: builds every fuzz/fuzz_*.c as a libFuzzer target
# (clang, address and undefined sanitizers) into build/fuzz/ and runs each
# for SECONDS seconds on a scratch copy of its seed corpus fuzz/corpus/<name>/
# (fuzz_query.c uses fuzz/corpus/query), so the repository corpus is never
# modified. Exits non-zero if a target fails to build or finds a crash; the
# crashing input is kept under build/fuzz/artifacts/.
#
# Only src/base, src/fhir, src/kb and the HL7 v2 parser and ACK
# (src/hl7v2/parse.c, ack.c; not the listener) go into the fuzz library:
# the parsers live there and nothing in them needs the database or the
# network (fuzz_kb_map reads data/kb, relative to the repository root).
set -euo pipefail

secs="${1:-20}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

CC="${FUZZ_CC:-clang}"
if ! command -v "$CC" >/dev/null; then
	echo "fuzz: $CC not found (scripts/deps.sh installs clang)" >&2
	exit 1
fi
out=build/fuzz
mkdir -p "$out/obj" "$out/artifacts"

CFLAGS=(-std=c17 -D_GNU_SOURCE -Isrc -include src/base/banned.h -g -O1
	-fno-omit-frame-pointer -fsanitize=address,undefined
	-fno-sanitize-recover=undefined -Wall -Wextra -Wno-unused-parameter)
# shellcheck disable=SC2207
PKG_CFLAGS=($(pkg-config --cflags jansson))
# shellcheck disable=SC2207
PKG_LIBS=($(pkg-config --libs jansson))

# Library objects, rebuilt only when the source or a header is newer.
objs=()
newest_hdr=$(ls -t src/base/*.h src/fhir/*.h src/fhir/*.def src/kb/*.h src/hl7v2/*.h 2>/dev/null | head -1)
for src in src/base/*.c src/fhir/*.c src/kb/*.c src/hl7v2/parse.c src/hl7v2/ack.c; do
	obj="$out/obj/$(echo "${src#src/}" | tr / _).o"
	objs+=("$obj")
	if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ "$newest_hdr" -nt "$obj" ]; then
		echo "fuzz: cc $src"
		"$CC" "${CFLAGS[@]}" "${PKG_CFLAGS[@]}" -fsanitize=fuzzer-no-link \
			-c "$src" -o "$obj" &
	fi
done
wait_all() {
	local rc=0
	for job in $(jobs -p); do wait "$job" || rc=1; done
	return $rc
}
if ! wait_all; then
	echo "fuzz: library build failed" >&2
	exit 1
fi

shopt -s nullglob
targets=(fuzz/fuzz_*.c)
if [ ${#targets[@]} -eq 0 ]; then
	echo "fuzz: no targets in fuzz/"
	exit 0
fi

status=0
for t in "${targets[@]}"; do
	name="$(basename "$t" .c)"
	short="${name#fuzz_}"
	bin="$out/$name"
	echo "fuzz: build $name"
	if ! "$CC" "${CFLAGS[@]}" "${PKG_CFLAGS[@]}" -fsanitize=fuzzer "$t" \
		"${objs[@]}" "${PKG_LIBS[@]}" -lm -lpthread -o "$bin"; then
		echo "fuzz: $name: build failed" >&2
		status=1
		continue
	fi
	work="$(mktemp -d "${TMPDIR:-/tmp}/cw-fuzz-$short.XXXXXX")"
	if [ -d "fuzz/corpus/$short" ]; then
		cp -R "fuzz/corpus/$short/." "$work/"
	fi
	dict=()
	[ -f "fuzz/$short.dict" ] && dict=(-dict="fuzz/$short.dict")
	echo "fuzz: run $name for ${secs}s"
	if ! "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$out/artifacts/$name-" \
		"${dict[@]}" "$work" >"$out/$name.log" 2>&1; then
		echo "fuzz: $name FAILED; last lines of $out/$name.log:" >&2
		tail -n 40 "$out/$name.log" >&2
		status=1
	else
		grep -E "stat::number_of_executed_units|stat::average_exec_per_sec" "$out/$name.log" |
			sed "s/^/fuzz: $name: /" || true
	fi
	rm -rf "$work"
done
if [ $status -eq 0 ]; then
	echo "fuzz: all targets clean"
fi
exit $status
