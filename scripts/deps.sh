#!/usr/bin/env bash
# Installs the Debian packages careweave builds, tests and benchmarks with,
# when any is missing. Used by README's commands and by .ci/run.
set -euo pipefail
pkgs=(build-essential pkg-config clang libclang-rt-14-dev
      libmicrohttpd-dev libgnutls28-dev libcurl4-gnutls-dev libjansson-dev libsqlite3-dev libsodium-dev zlib1g-dev
      libcmocka-dev sqlite3 nodejs npm nginx-light wrk curl openssl tzdata)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# node and npm may come from outside Debian's packages on some machines.
if command -v node >/dev/null && command -v npm >/dev/null; then
	missing=("${missing[@]/nodejs}"); missing=("${missing[@]/npm}")
fi
want=()
for p in "${missing[@]}"; do [ -n "$p" ] && want+=("$p"); done
if [ ${#want[@]} -gt 0 ]; then
	echo "deps: installing ${want[*]}"
	sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${want[@]}" >/dev/null
fi
