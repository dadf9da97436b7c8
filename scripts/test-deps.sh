#!/usr/bin/env bash
# Installs the programs the tests start as real peers, when they are missing:
# openssl (tests read certificates back with it) and redis-server (shared rate limits).
# Runs before `npm test` (npm's pretest hook) and from .ci/run.
set -euo pipefail
need=()
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
[ ${#need[@]} -eq 0 ] && exit 0
echo "test-deps: installing ${need[*]} (Debian packages)" >&2
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo -n"; else
    echo "test-deps: ${need[*]} missing and not root: install them (apt-get install ${need[*]})" >&2; exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: ${need[*]} missing and no apt-get here: install them with your package manager" >&2; exit 1
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
