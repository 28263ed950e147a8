import { describe, expect, it } from "vitest";
import { IpNetworkList, networkKey, parseIpAddress, parseIpNetwork, reversedName } from "./ip.ts";

describe("IP primitives", () => {
  it("parses addresses, unwrapping IPv4-mapped IPv6 and dropping zone IDs; refuses inet_aton forms", () => {
    expect(parseIpAddress("::ffff:192.0.2.7")?.toString()).toBe("192.0.2.7");
    expect(parseIpAddress("fe80::1%eth0")?.toString()).toBe("fe80::1");
    expect(parseIpAddress("0x7f.1")).toBeUndefined();
    expect(parseIpAddress("localhost")).toBeUndefined();
  });

  it("matches networks of the same family, mapped ranges included", () => {
    const list = IpNetworkList.parse(["192.0.2.0/24", "2001:db8::/32", "::ffff:198.51.100.0/120"]);
    if (!(list instanceof IpNetworkList)) throw new Error("expected a list");
    expect(list.contains("192.0.2.200")).toBe(true);
    expect(list.contains("::ffff:192.0.2.200")).toBe(true);
    expect(list.contains("198.51.100.9")).toBe(true);
    expect(list.contains("2001:db8:1::1")).toBe(true);
    expect(list.contains("203.0.113.1")).toBe(false);
    expect(IpNetworkList.parse(["192.0.2.0/24", "nonsense"])).toEqual({ invalid: 1 });
    expect(parseIpNetwork("192.0.2.77/24")?.text).toBe("192.0.2.0/24");
  });

  it("keys clients by network and reverses names for DNS lists", () => {
    expect(networkKey(parseIpAddress("2001:db8:1:2:aaaa::1")!, { ipv4: 32, ipv6: 64 })).toBe("2001:db8:1:2::/64");
    expect(networkKey(parseIpAddress("192.0.2.9")!, { ipv4: 24, ipv6: 64 })).toBe("192.0.2.0/24");
    expect(reversedName(parseIpAddress("192.0.2.1")!, "bl.test")).toBe("1.2.0.192.bl.test");
    expect(reversedName(parseIpAddress("2001:db8::1")!, "ip6.arpa")).toMatch(
      /^1\.0\.0\.0\.0\.0\.0\.0\..*\.8\.b\.d\.0\.1\.0\.0\.2\.ip6\.arpa$/,
    );
  });
});
