// What the plugin records for each connection, under the typed `dnsblResult` key.

/** One list's answer for the client. */
export interface DnsblZoneResult {
  readonly zone: string;
  /** "listed": the list answered with a counted 127.0.0.x; "clean": NXDOMAIN or only uncounted answers. */
  readonly status: "listed" | "clean" | "error";
  /** The A records the list answered with (e.g. ["127.0.0.2"]). */
  readonly answers: readonly string[];
  /** What this list added to the score (0 unless listed). */
  readonly weight: number;
  /** The list's TXT record for the listing, usually a reason and a lookup URL. */
  readonly reason?: string;
  /** Why the lookup failed: a DNS code (ETIMEOUT, ESERVFAIL …) or what was wrong with the answer. */
  readonly error?: string;
}

export interface DnsblResult {
  /** The address looked up (IPv4-mapped IPv6 unwrapped). */
  readonly ip: string;
  /**
   * "listed": the score reached the threshold; "clean": it did not and every list answered;
   * "error": it did not, but at least one list could not be asked; "allowlisted": not looked up.
   */
  readonly status: "listed" | "clean" | "error" | "allowlisted";
  readonly score: number;
  readonly threshold: number;
  readonly zones: readonly DnsblZoneResult[];
}
