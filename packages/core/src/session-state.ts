// The state behind the Session and Transaction objects hooks see: what the client said, what
// plugins decided, and the recipient list with its rules (expansion, duplicates collapsing,
// rewriting from data hooks until queueing begins).
import type { SMTPServerSession } from "smtp-server";
import { addressKey } from "./address.ts";
import { newQueueId } from "./queue-id.ts";
import { Results } from "./result-key.ts";
import type {
  AddRecipientOutcome,
  Address,
  ListenerInfo,
  Recipient,
  Session,
  TlsInfo,
  Transaction,
} from "./session.ts";
import type { SMTPConnection } from "./smtp-adapter.ts";
import type { Expansion } from "./verdict.ts";

export class SessionState implements Session {
  readonly results = new Results();
  readonly connectedAt = new Date();
  heloName: string | undefined;
  greeting: "EHLO" | "HELO" | undefined;
  tls: TlsInfo | undefined;
  user: string | undefined;
  authFailures = 0;
  transactionCount = 0;
  transaction: TransactionState | undefined;
  connection: SMTPConnection | undefined;
  readonly listener: ListenerInfo;
  readonly #smtp: SMTPServerSession;

  constructor(smtp: SMTPServerSession, listener: ListenerInfo) {
    this.#smtp = smtp;
    this.listener = listener;
  }
  get id() {
    return this.#smtp.id;
  }
  get remoteAddress() {
    return this.#smtp.remoteAddress;
  }
  get remotePort() {
    return this.#smtp.remotePort;
  }
  get localAddress() {
    return this.#smtp.localAddress;
  }
  get localPort() {
    return this.#smtp.localPort;
  }
  get clientHostname() {
    const name = this.#smtp.clientHostname;
    // smtp-server writes "[ip]" when there is no reverse name.
    return name && !name.startsWith("[") ? name : undefined;
  }
}

/** Decides recipients for addRecipient() as RCPT TO would: through the rcptTo hooks. */
export type RecipientClaim = (transaction: TransactionState, candidate: Address) => Promise<AddRecipientOutcome>;

export class TransactionState implements Transaction {
  readonly id = newQueueId();
  readonly results = new Results();
  readonly startedAt = performance.now();
  recipients: Recipient[] = [];
  /** Set once route groups are formed; the recipient list is final from then on. */
  queueing = false;
  /** Set once the DATA reply was decided (the transaction's end is reported once). */
  ended = false;
  quarantined: { readonly reason: string } | undefined;
  readonly session: SessionState;
  #mailFrom: Address;
  readonly requireTls: boolean;
  readonly bodyType: string;
  readonly smtpUtf8: boolean;
  readonly dsn: Transaction["dsn"];
  readonly #claim: RecipientClaim;
  /** Keys (address + route) of the recipients, for collapsing duplicates. */
  readonly #keys = new Set<string>();

  constructor(session: SessionState, mailFrom: Address, smtp: SMTPServerSession, claim: RecipientClaim) {
    this.session = session;
    this.#mailFrom = mailFrom;
    this.requireTls = Boolean(smtp.envelope.requireTLS);
    this.bodyType = smtp.envelope.bodyType ?? "7bit";
    this.smtpUtf8 = Boolean(smtp.envelope.smtpUtf8);
    this.dsn = smtp.envelope.dsn ? { ret: smtp.envelope.dsn.ret, envid: smtp.envelope.dsn.envid } : undefined;
    this.#claim = claim;
  }

  get mailFrom(): Address {
    return this.#mailFrom;
  }

  changeSender(address: string, parameters: Address["parameters"] = {}): void {
    this.#assertOpen("changeSender()");
    this.#mailFrom = { address, parameters };
  }

  #assertOpen(action: string): void {
    if (this.queueing) throw new TypeError(`${action}: the recipients are final once queueing has begun`);
  }

  /**
   * Adds what a recipient resolved to. Each address gets its route, the RCPT TO address as its
   * original, and the client's DSN parameters; one already present with the same route collapses.
   */
  addResolved(given: Address, dsn: Recipient["dsn"], expansion: readonly Expansion[]): Recipient[] {
    const added: Recipient[] = [];
    for (const entry of expansion) {
      const key = `${entry.route}\n${addressKey(entry.address)}`;
      if (this.#keys.has(key)) continue;
      this.#keys.add(key);
      const recipient: Recipient = {
        address: entry.address,
        // Parameters of the RCPT TO (NOTIFY, ORCPT …) belong to the address the client gave.
        parameters: entry.address === given.address ? given.parameters : {},
        route: entry.route,
        dsn,
        original: given.address,
        detail: entry.detail,
        sender: entry.sender,
      };
      this.recipients.push(recipient);
      added.push(recipient);
    }
    return added;
  }

  reroute(recipient: Recipient, route: string): void {
    this.#assertOpen("reroute()");
    if (!route) return;
    this.recipients = this.recipients.map((current) => (current === recipient ? { ...current, route } : current));
    this.#rekey();
  }

  async addRecipient(
    address: string,
    options: { route?: string; parameters?: Address["parameters"] } = {},
  ): Promise<AddRecipientOutcome> {
    this.#assertOpen("addRecipient()");
    const given: Address = { address, parameters: options.parameters ?? {} };
    if (options.route) {
      return { ok: true, recipients: this.addResolved(given, undefined, [{ address, route: options.route }]) };
    }
    return this.#claim(this, given);
  }

  removeRecipient(address: string): number {
    this.#assertOpen("removeRecipient()");
    const key = addressKey(address);
    const before = this.recipients.length;
    this.recipients = this.recipients.filter((recipient) => addressKey(recipient.address) !== key);
    this.#rekey();
    return before - this.recipients.length;
  }

  quarantine(reason: string): void {
    this.#assertOpen("quarantine()");
    this.quarantined = { reason };
  }

  #rekey(): void {
    this.#keys.clear();
    for (const recipient of this.recipients) this.#keys.add(`${recipient.route}\n${addressKey(recipient.address)}`);
  }
}
