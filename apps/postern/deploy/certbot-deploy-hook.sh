#!/bin/sh
# certbot deploy hook for Postern: after a certificate is issued or renewed, copies it where the
# postern user can read it and tells the server to load it.
#
#   certbot certonly --standalone -d mx.example.com --cert-name postern \
#     --deploy-hook /etc/postern/certbot-deploy-hook.sh
#
# Given with --deploy-hook, certbot keeps the hook for this certificate only (in its renewal
# config) and runs it after every renewal, with RENEWED_LINEAGE=/etc/letsencrypt/live/postern.
# /etc/letsencrypt/live and archive are readable by root only, so the files are copied to
# $POSTERN_TLS_DIR (default /etc/postern/tls) as cert.pem and key.pem, group postern, mode 0640;
# each through a temporary file and a rename, so the server never reads half a file. Point the
# listener's certificate and key there.
#
# Then the reload: $POSTERN_RELOAD if set (e.g. "docker kill -s HUP postern"), else
# `systemctl reload postern` when that unit runs. Postern also reloads by itself when the files
# change (tlsReload.watchFiles), so a missed signal is not fatal.
set -eu

: "${RENEWED_LINEAGE:?RENEWED_LINEAGE is not set: this script is run by certbot (see the comment at its top)}"
target="${POSTERN_TLS_DIR:-/etc/postern/tls}"
group="${POSTERN_GROUP:-postern}"

install -d -m 0750 -g "$group" "$target"
copy() {
  install -m 0640 -g "$group" "$RENEWED_LINEAGE/$1" "$target/.$2.new"
  mv -f "$target/.$2.new" "$target/$2"
}
# The key first: a reload between the two renames then pairs the new key with the old
# certificate only for an instant, and the server refuses a mismatched pair and keeps the old one.
copy privkey.pem key.pem
copy fullchain.pem cert.pem
echo "postern: installed the certificate of $RENEWED_LINEAGE in $target"

if [ -n "${POSTERN_RELOAD:-}" ]; then
  sh -c "$POSTERN_RELOAD"
elif command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet postern.service; then
  systemctl reload postern.service
else
  echo "postern: no running postern.service to reload; the server picks up the files when they change"
fi
