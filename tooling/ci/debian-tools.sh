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
  # The tests start their own Dovecot/Redis on their own ports: keep the packages' maintainer
  # scripts from starting system-wide services (no init system here anyway).
  policy=/usr/sbin/policy-rc.d
  own_policy=false
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && own_policy=true
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if [ "$own_policy" = true ]; then rm -f "$policy"; fi
fi
