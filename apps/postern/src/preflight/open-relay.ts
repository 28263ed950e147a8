// Settings that let strangers relay: @postern/recipients relaying for networks that hold much of
// the internet, a listener believing PROXY headers from anywhere (a client then claims any address,
// a relay network's included), and AUTH in clear text on an address the world can reach. Each is
// legal, and each makes an open relay or hands out passwords, so `check` warns (and `--strict` fails).
import { type IpNetwork, networkContains, type Plugin, parseIpNetwork, type ServerConfig } from "@postern/core";
import { originOf } from "../plugin-options.ts";
import { type Finding, warning } from "./finding.ts";

/** Networks no stranger sends from: private, loopback, link-local, shared (CGNAT) and unique-local ranges. */
const privateNetworks = [
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "127.0.0.0/8",
  "100.64.0.0/10",
  "169.254.0.0/16",
  "::1/128",
  "fc00::/7",
  "fe80::/10",
].map((text) => parseIpNetwork(text)!);

/** Shorter prefixes than these hold far more than one site's public addresses. */
const widestSite = { ipv4: 16, ipv6: 32 } as const;

function isPrivate(network: IpNetwork): boolean {
  return privateNetworks.some((range) => network.prefix >= range.prefix && networkContains(range, network.address));
}

/** A network that holds public addresses beyond one organisation's. */
function isWidePublic(network: IpNetwork): boolean {
  return !isPrivate(network) && network.prefix < widestSite[network.address.kind()];
}

function isLoopback(address: string): boolean {
  return address === "::1" || address === "localhost" || address.startsWith("127.");
}

function relayNetworkFindings(plugins: readonly Plugin[]): Finding[] {
  return plugins.flatMap((plugin, index) => {
    const origin = originOf(plugin);
    if (origin?.package !== "@postern/recipients") return [];
    const networks = (origin.options as { relay?: { networks?: unknown } } | undefined)?.relay?.networks;
    if (!Array.isArray(networks)) return [];
    return networks.flatMap((text, position) => {
      const network = typeof text === "string" ? parseIpNetwork(text) : undefined;
      if (!network || !isWidePublic(network)) return [];
      const who =
        network.prefix === 0
          ? "every address on the internet"
          : `${network.text}, public addresses far beyond one site`;
      return [warning(`plugins.${index}.options.relay.networks.${position}`, `relays mail for ${who}: an open relay`)];
    });
  });
}

function listenerFindings(config: ServerConfig): Finding[] {
  return config.listeners.flatMap((listener, index) => {
    const findings: Finding[] = [];
    for (const [position, text] of listener.proxy.entries()) {
      const network = parseIpNetwork(text);
      if (network && isWidePublic(network)) {
        findings.push(
          warning(
            `listeners.${index}.proxy.${position}`,
            `believes PROXY headers from ${network.text}: any client there can claim any address, a relay network's included`,
          ),
        );
      }
    }
    if (listener.tls === "none" && listener.auth !== "none" && !isLoopback(listener.address)) {
      findings.push(
        warning(
          `listeners.${index}.allowInsecureAuth`,
          `offers AUTH without TLS on ${listener.address}: passwords cross the network in clear; use tls "starttls" or "implicit"`,
        ),
      );
    }
    return findings;
  });
}

export function checkOpenRelay(config: ServerConfig): Finding[] {
  return [...relayNetworkFindings(config.plugins), ...listenerFindings(config)];
}
