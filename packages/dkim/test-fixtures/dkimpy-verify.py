#!/usr/bin/python3
# Verifies every DKIM-Signature of a message with dkimpy (Debian's python3-dkim), an independent
# implementation, so the tests can check that what @postern/dkim signs verifies elsewhere.
# Usage: dkimpy-verify.py MESSAGE_FILE DNS_JSON   (DNS_JSON: {"sel._domainkey.dom": "v=DKIM1; …"})
# Prints a JSON list with one {"selector", "domain", "algorithm", "valid"} per signature.
import json
import sys

import dkim


def main():
    with open(sys.argv[1], "rb") as handle:
        message = handle.read()
    with open(sys.argv[2]) as handle:
        records = json.load(handle)

    def dns(name, timeout=5):
        return records.get(name.decode().rstrip("."), "").encode()

    checker = dkim.DKIM(message)
    count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
    results = []
    for index in range(count):
        valid = checker.verify(idx=index, dnsfunc=dns)
        tags = checker.signature_fields
        results.append({
            "selector": tags.get(b"s", b"").decode(),
            "domain": tags.get(b"d", b"").decode(),
            "algorithm": tags.get(b"a", b"").decode(),
            "valid": bool(valid),
        })
    print(json.dumps(results))


main()
