// The mailbox addresses of the From header fields (RFC 5322 §3.6.2), groups flattened.
import addressparser from "nodemailer/lib/addressparser";

export function fromAddresses(values: readonly string[]): string[] {
  return values.flatMap((value) =>
    addressparser(value, { flatten: true })
      .map((mailbox) => mailbox.address ?? "")
      .filter((address) => address !== ""),
  );
}
