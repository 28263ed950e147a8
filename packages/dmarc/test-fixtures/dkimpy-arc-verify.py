#!/usr/bin/python3
# Validates a message's ARC chain with dkimpy (Debian's python3-dkim), an independent
# implementation, so the tests can check that what @postern/dmarc seals validates elsewhere.
# Usage: dkimpy-arc-verify.py MESSAGE_FILE DNS_JSON   (DNS_JSON: {"sel._domainkey.dom": "v=DKIM1; …"})
# Prints {"cv": "pass" | "fail" | "none", "comment": "…"}.
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

    cv, _results, comment = dkim.arc_verify(message, dnsfunc=dns)
    print(json.dumps({"cv": cv.decode(), "comment": comment}))


main()
