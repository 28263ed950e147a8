#!/usr/bin/python3
# Writes DKIM test fixtures signed by an independent implementation, dkimpy (Debian's
# python3-dkim), so @postern/dkim is tested against signatures it did not make itself.
# Run once; the output (keys, DNS records, messages) is committed as test data:
#   /usr/bin/python3 packages/dkim/test-fixtures/make-fixtures.py
# The keys are test keys only: they sign nothing but these fixtures.
import base64
import json
import os
import subprocess

import dkim
import nacl.signing

HERE = os.path.dirname(os.path.abspath(__file__))
DOMAIN = b"signed.example"
SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id"]

MESSAGE = (
    b"From: Alice <alice@signed.example>\r\n"
    b"To: Bob <bob@localhost>\r\n"
    b"Subject: Quarterly figures\r\n"
    b"Date: Tue, 03 Mar 2026 10:00:00 +0000\r\n"
    b"Message-ID: <fixture-1@signed.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"Hello Bob,\r\n"
    b"\r\n"
    b"the figures are attached in spirit.  Trailing spaces here:   \r\n"
    b"Regards, Alice\r\n"
)


def write(name, data):
    with open(os.path.join(HERE, name), "wb") as handle:
        handle.write(data)


def rsa_key(bits):
    pem = subprocess.run(
        ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", f"rsa_keygen_bits:{bits}"],
        check=True, capture_output=True,
    ).stdout
    der = subprocess.run(
        ["openssl", "pkey", "-pubout", "-outform", "DER"], input=pem, check=True, capture_output=True
    ).stdout
    return pem, base64.b64encode(der).decode()


def tamper_body(message):
    return message.replace(b"Regards, Alice", b"Regards, Mallory")


def tamper_header(message):
    return message.replace(b"Subject: Quarterly figures", b"Subject: Urgent wire transfer")


def main():
    records = {}

    rsa_pem, rsa_public = rsa_key(2048)
    write("rsa.key.pem", rsa_pem)
    records["py-rsa._domainkey.signed.example"] = f"v=DKIM1; k=rsa; p={rsa_public}"

    seed = nacl.signing.SigningKey.generate()
    ed_private = base64.b64encode(bytes(seed))
    ed_public = base64.b64encode(bytes(seed.verify_key)).decode()
    write("ed25519.key.b64", ed_private + b"\n")
    records["py-ed._domainkey.signed.example"] = f"v=DKIM1; k=ed25519; p={ed_public}"

    def sign(message, selector, key, algorithm, **extra):
        header = dkim.sign(
            message, selector, DOMAIN, key, include_headers=SIGNED_HEADERS,
            canonicalize=(b"relaxed", b"relaxed"), signature_algorithm=algorithm, **extra,
        )
        return header + message

    rsa = sign(MESSAGE, b"py-rsa", rsa_pem, b"rsa-sha256")
    ed = sign(MESSAGE, b"py-ed", ed_private, b"ed25519-sha256")
    dual = sign(sign(MESSAGE, b"py-ed", ed_private, b"ed25519-sha256"), b"py-rsa", rsa_pem, b"rsa-sha256")
    sha1 = sign(MESSAGE, b"py-rsa", rsa_pem, b"rsa-sha1")
    # l= covers the body as signed; text appended later is not covered (RFC 6376 8.2).
    length = sign(MESSAGE, b"py-rsa", rsa_pem, b"rsa-sha256", length=True) + b"P.S. appended after signing\r\n"

    for name, message in [
        ("rsa", rsa),
        ("ed25519", ed),
        ("dual", dual),
        ("rsa-sha1", sha1),
        ("rsa-length", length),
        ("rsa-body-tampered", tamper_body(rsa)),
        ("rsa-header-tampered", tamper_header(rsa)),
        ("ed25519-body-tampered", tamper_body(ed)),
        ("ed25519-header-tampered", tamper_header(ed)),
    ]:
        write(f"{name}.eml", message)

    # Check with dkimpy itself that the good copies verify and the tampered ones do not.
    def dns(name, timeout=5):
        return records.get(name.decode().rstrip("."), "").encode()

    for name, message, expected in [
        ("rsa", rsa, True), ("ed25519", ed, True), ("rsa-length", length, True),
        ("rsa-body-tampered", tamper_body(rsa), False), ("rsa-header-tampered", tamper_header(rsa), False),
        ("ed25519-body-tampered", tamper_body(ed), False), ("ed25519-header-tampered", tamper_header(ed), False),
    ]:
        if dkim.verify(message, dnsfunc=dns) is not expected:
            raise SystemExit(f"dkimpy disagrees about {name}")

    write("dns.json", (json.dumps(records, indent=2) + "\n").encode())


main()
