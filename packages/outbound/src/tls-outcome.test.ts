import { describe, expect, it } from "vitest";
import { certificateFailure, stsFetchFailure, stsPolicyStrings, stsRefusedOutcome, tlsaString } from "./tls-outcome.ts";

describe("TLS failures in RFC 8460 terms", () => {
  it("maps Node's certificate codes and handshake messages to result types", () => {
    expect(certificateFailure("ERR_TLS_CERT_ALTNAME_INVALID").type).toBe("certificate-host-mismatch");
    expect(certificateFailure("Hostname/IP does not match certificate's altnames: Host: a.test").type).toBe(
      "certificate-host-mismatch",
    );
    expect(certificateFailure("certificate has expired")).toEqual({
      type: "certificate-expired",
      code: "CERT_HAS_EXPIRED",
    });
    expect(certificateFailure("DEPTH_ZERO_SELF_SIGNED_CERT").type).toBe("certificate-not-trusted");
    expect(certificateFailure("self-signed certificate in certificate chain").code).toBe("SELF_SIGNED_CERT_IN_CHAIN");
    expect(certificateFailure("unable to get local issuer certificate").type).toBe("certificate-not-trusted");
    expect(certificateFailure("wrong version number")).toEqual({
      type: "validation-failure",
      code: "wrong version number",
    });
  });

  it("tells an MTA-STS policy that could not be fetched from one that is invalid or behind a bad certificate", () => {
    const error = (code: string, message = code) => Object.assign(new Error(message), { code });
    expect(stsFetchFailure(error("invalid_sts_mode")).type).toBe("sts-policy-invalid");
    expect(stsFetchFailure(error("http_status_404")).type).toBe("sts-policy-fetch-error");
    expect(stsFetchFailure(error("ECONNREFUSED")).type).toBe("sts-policy-fetch-error");
    expect(stsFetchFailure(error("CERT_HAS_EXPIRED", "certificate has expired")).type).toBe("sts-webpki-invalid");
    expect(stsFetchFailure(undefined).type).toBe("sts-policy-fetch-error");
  });

  it("writes policies as a report shows them", () => {
    expect(
      stsPolicyStrings({ id: "1", mode: "enforce", mx: ["mx.a.test", "*.b.test"], maxAge: 86400 } as never),
    ).toEqual(["version: STSv1", "mode: enforce", "mx: mx.a.test", "mx: *.b.test", "max_age: 86400"]);
    expect(stsPolicyStrings({ id: false, mode: "none" } as never)).toEqual([]);
    expect(tlsaString({ usage: 3, selector: 1, matchingType: 1, data: Buffer.from([0xab, 0x01]) })).toBe("3 1 1 ab01");
  });

  it("reports an MX host an enforce policy rules out as a validation failure with a reason code", () => {
    const policy = { id: "1", mode: "enforce", mx: ["mx.a.test"], maxAge: 600 } as never;
    expect(
      stsRefusedOutcome({ name: "old.a.test", policyDomain: "a.test" }, policy, {
        recipientDomain: "a.test",
        queueId: "q1",
      }),
    ).toEqual({
      policy: {
        type: "sts",
        domain: "a.test",
        strings: ["version: STSv1", "mode: enforce", "mx: mx.a.test", "max_age: 600"],
      },
      result: "validation-failure",
      recipientDomain: "a.test",
      mxHost: "old.a.test",
      reasonCode: "mx-not-in-policy",
      detail: "MTA-STS (enforce): old.a.test is not an MX host the policy of a.test names; not connected to",
      queueId: "q1",
    });
  });
});
