#!/usr/bin/env bash
# Installs the Debian packages listed in debian-packages.txt (the tools interop tests drive), once.
set -euo pipefail
list="$(dirname "$0")/debian-packages.txt"
missing=()
while read -r package; do
  case "$package" in ""|\#*) continue ;; esac
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done <"$list"
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[ci] installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
