#!/usr/bin/python3
# Checks each DKIM-Signature of a stored message with dkimpy (Debian's python3-dkim), with the key
# records given in a JSON file instead of DNS, so the milter tests can show that what OpenDKIM signed
# through Postern verifies with an independent implementation.
# Usage: dkim-verify.py MESSAGE_FILE RECORDS_JSON   (RECORDS_JSON: {"sel._domainkey.example.org": "v=DKIM1; ..."})
# Prints a JSON list: one {"domain", "selector", "headers", "valid"} per signature, top first.
import json
import sys

import dkim

with open(sys.argv[1], "rb") as message_file:
    message = message_file.read()
with open(sys.argv[2]) as records_file:
    records = json.load(records_file)


def lookup(name, timeout=5):
    return records.get(name.decode().rstrip("."), "").encode()


verifier = dkim.DKIM(message)
signatures = [value for name, value in verifier.headers if name.lower() == b"dkim-signature"]
results = []
for index in range(len(signatures)):
    valid = verifier.verify(idx=index, dnsfunc=lookup)
    tags = verifier.signature_fields
    results.append(
        {
            "domain": tags.get(b"d", b"").decode(),
            "selector": tags.get(b"s", b"").decode(),
            "headers": tags.get(b"h", b"").decode(),
            "valid": bool(valid),
        }
    )
print(json.dumps(results))
