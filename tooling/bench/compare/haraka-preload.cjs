// Loaded into Haraka with `node --require` for compare.ts: DNS from the bench's fake server
// (BENCH_DNS_SERVER, host:port) instead of the system's, so SPF and DKIM lookups stay on loopback.
"use strict";
const dns = require("node:dns");
const server = process.env.BENCH_DNS_SERVER;
if (server) dns.setServers([server]);
