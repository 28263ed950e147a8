// Sends a message with nodemailer's SMTP client, the way a real peer would.
import nodemailer from "nodemailer";

export interface SendOptions {
  port: number;
  host?: string;
  from?: string;
  to: string | string[];
  /** The whole message; see buildMessage(). */
  raw: Buffer | string;
  /** Implicit TLS (port 465 style). */
  secure?: boolean;
  /** Use STARTTLS if offered (default true); set false to stay in plaintext. */
  startTls?: boolean;
  /** Refuse to send unless STARTTLS succeeds (nodemailer's requireTLS). */
  requireTls?: boolean;
  /** Send the RFC 8689 REQUIRETLS parameter with MAIL FROM (needs a TLS session). */
  requireTlsExtension?: boolean;
  auth?: { user: string; pass: string };
  /** The name sent with EHLO. */
  name?: string;
}

export interface SendResult {
  accepted: string[];
  rejected: string[];
  /** The server's reply to DATA, e.g. "250 2.0.0 Ok: queued as …". */
  response: string;
}

/** An SMTP refusal as nodemailer reports it. */
export interface SendError extends Error {
  responseCode?: number;
  response?: string;
  command?: string;
}

export async function sendMail(options: SendOptions): Promise<SendResult> {
  const transport = nodemailer.createTransport({
    host: options.host ?? "127.0.0.1",
    port: options.port,
    secure: options.secure ?? false,
    ignoreTLS: options.startTls === false,
    requireTLS: options.requireTls ?? false,
    tls: { rejectUnauthorized: false },
    name: options.name ?? "client.test",
    ...(options.auth ? { auth: options.auth } : {}),
  });
  try {
    const info = await transport.sendMail({
      envelope: { from: options.from ?? "sender@example.org", to: options.to },
      raw: options.raw,
      ...(options.requireTlsExtension ? { requireTLSExtensionEnabled: true } : {}),
    });
    return {
      accepted: info.accepted.map(String),
      rejected: info.rejected.map(String),
      response: info.response,
    };
  } finally {
    transport.close();
  }
}
