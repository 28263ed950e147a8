// Every `postern` subcommand, in the order `postern --help` lists them. To add one, write
// commands/<name>.ts exporting a Command, import it here and add it to the list.
import type { Command } from "../command.ts";
import { address } from "./address.ts";
import { check } from "./check.ts";
import { dkim } from "./dkim.ts";
import { dmarc } from "./dmarc.ts";
import { dnsCommand } from "./dns.ts";
import { mailbox } from "./mailbox.ts";
import { queue } from "./queue.ts";
import { rateLimit } from "./rate-limit.ts";
import { start } from "./start.ts";
import { status } from "./status.ts";
import { tlsRptCommand } from "./tls-rpt.ts";
import { trace } from "./trace.ts";
import { user } from "./user.ts";

// biome-ignore format: one command per line, so adding a command is a one-line change
export const commands: readonly Command[] = [
  start,
  check,
  dkim,
  dmarc,
  tlsRptCommand,
  dnsCommand,
  queue,
  mailbox,
  rateLimit,
  user,
  address,
  status,
  trace,
];
