#!/usr/bin/env bash
# Installs the Debian tools the interop tests drive, once. Tests that need one of them look for it
# and fail with a message naming this script if it is missing.
set -euo pipefail
packages=(swaks libnet-ssleay-perl python3)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[ci] installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
