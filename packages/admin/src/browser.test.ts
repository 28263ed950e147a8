// The admin UI in a real browser: Debian's Chromium driven by playwright-core against a running
// server with real traffic — list the recent transactions, open the refused one's trail, open the
// queued message and retry it. POSTERN_SCREENSHOTS=1 writes the README's screenshots (docs/).
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AdminTestServer, startAdminServer, startStoresServer, tokenFile } from "./test-support/admin-server.ts";

let browser: Browser;
const shots = process.env.POSTERN_SCREENSHOTS ? join(import.meta.dirname, "../docs") : undefined;

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    // No network but loopback here: keep Chromium from calling home at start (playwright gives
    // it a new empty profile).
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  if (shots) await mkdir(shots, { recursive: true });
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

async function screenshot(page: import("playwright-core").Page, name: string) {
  if (shots) await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

describe("the admin UI in Chromium", () => {
  let test: AdminTestServer;
  let queued: string;
  beforeAll(async () => {
    test = await startAdminServer();
    queued = await test.traffic();
  });
  afterAll(() => test.stop());

  it("lists transactions, shows why one was refused, retries, holds and releases a queued message", async () => {
    const page = await browser.newPage({ viewport: { width: 1200, height: 800 } });
    await page.goto(`${test.base}/`);
    await expect.poll(() => page.locator("h1").textContent()).toBe("Overview");
    await screenshot(page, "overview");

    await page.getByRole("link", { name: "Transactions" }).click();
    const rows = page.locator("table tr");
    await expect.poll(() => rows.count()).toBe(3);
    await screenshot(page, "transactions");
    // The refused one: open its trail.
    await page.locator("tr", { hasText: "bob@blocked.test" }).getByRole("link").click();
    await expect.poll(() => page.locator("h1").textContent()).toMatch(/^Transaction /);
    const refusal = page.locator("tr", { hasText: "test:policy" });
    expect(await refusal.textContent()).toContain("550 5.7.1 Recipient domain blocked by policy");
    expect(await refusal.locator("td.bad").textContent()).toBe("reject");
    await screenshot(page, "trail");

    await page.getByRole("link", { name: "Queue" }).click();
    await page.getByRole("link", { name: queued }).click();
    await expect.poll(() => page.locator("h1").textContent()).toBe(`Queued message ${queued}`);
    await page.getByRole("button", { name: "Retry now" }).click();
    await expect.poll(() => page.getByRole("status").textContent()).toBe(`${queued}: 1 recipient due now`);
    await screenshot(page, "queue-message");
    // Hold it: the list shows it on hold; release it again.
    await page.getByRole("button", { name: "Hold" }).click();
    await expect.poll(() => page.getByRole("status").textContent()).toBe(`${queued}: 1 recipient on hold`);
    expect(await page.locator("tr", { hasText: "held" }).count()).toBe(1);
    await page.getByRole("link", { name: "Queue" }).click();
    expect(await page.locator("tr", { hasText: queued }).textContent()).toContain("on hold");
    await page.getByRole("link", { name: queued }).click();
    await page.getByRole("button", { name: "Release" }).click();
    await expect.poll(() => page.getByRole("status").textContent()).toBe(`${queued}: 1 recipient released`);
    await page.close();
  });
});

describe("the mailboxes and rate-limits pages in Chromium", () => {
  it("shows a mailbox's messages and a client's counters, and resets them", async () => {
    const test = await startStoresServer();
    try {
      await test.traffic("Quarterly report");
      await test.traffic("Re: lunch on Friday");
      const page = await browser.newPage({ viewport: { width: 1200, height: 600 } });
      await page.goto(`${test.base}/`);
      await page.getByRole("link", { name: "Mailboxes" }).click();
      await page.getByPlaceholder("alice@example.com").fill("alice@example.test");
      await page.getByRole("button", { name: "Show" }).click();
      await expect.poll(() => page.locator("table tr").count()).toBe(3);
      expect(await page.locator("table").textContent()).toContain("Quarterly report");
      await screenshot(page, "mailboxes");

      await page.getByRole("link", { name: "Rate limits" }).click();
      await page.getByPlaceholder("ip=192.0.2.1 or user=alice").fill("ip=127.0.0.1");
      await page.getByRole("button", { name: "Show" }).click();
      const row = page.locator("tr", { hasText: "messages-ip-3600s" });
      await expect.poll(() => row.locator("td.num").textContent()).toBe("2");
      await screenshot(page, "rate-limits");
      page.once("dialog", (dialog) => void dialog.accept());
      await page.getByRole("button", { name: "Reset these counters" }).click();
      await expect.poll(() => page.locator("p.flash").textContent()).toBe("1 counter reset");
      expect(await page.locator("p.muted").textContent()).toBe("No counter matches.");
      await page.close();
    } finally {
      await test.stop();
    }
  });
});

describe("the admin UI with a token", () => {
  it("asks for the token once, then serves the pages", async () => {
    const dir = await mkdtemp(join(tmpdir(), "postern-admin-token-"));
    const token = "a-token-long-enough-for-the-admin";
    const test = await startAdminServer({ tokenFile: await tokenFile(dir, token) });
    try {
      const page = await browser.newPage();
      await page.goto(`${test.base}/queue`);
      await expect.poll(() => page.locator("h1").textContent()).toBe("Sign in");
      await page.getByLabel("Admin token").fill("not-the-token-at-all");
      await page.getByRole("button", { name: "Sign in" }).click();
      await expect.poll(() => page.locator("p.bad").textContent()).toContain("not the one in the token file");
      await page.getByLabel("Admin token").fill(token);
      await page.getByRole("button", { name: "Sign in" }).click();
      await expect.poll(() => page.locator("h1").textContent()).toBe("Overview");
      await page.getByRole("link", { name: "Queue" }).click();
      await expect.poll(() => page.locator("h1").textContent()).toBe("Outbound queue");
      await page.close();
    } finally {
      await test.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
