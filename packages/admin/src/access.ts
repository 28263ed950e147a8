// Who may use the admin listener. On loopback without a token file it is open to local users; on
// any other address it refuses to start without both TLS and a token, since it can delete mail.
// The API takes `Authorization: Bearer <token>`; the web UI asks for the token once and keeps it
// in an HttpOnly, SameSite=Strict cookie. State changes are POSTs only, and a POST from a browser
// must carry the CSRF token of the page it came from (a double-submit cookie, checked in constant
// time) and come from our own origin (hono's csrf middleware): a page elsewhere cannot make a
// logged-in browser retry or delete mail.
import { randomBytes, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import { ConfigError, parseIpAddress } from "@postern/core";
import type { Context, MiddlewareHandler } from "hono";
import { getCookie, setCookie } from "hono/cookie";

export const tokenCookie = "postern_admin";
export const csrfCookie = "postern_csrf";
export const csrfField = "_csrf";

export function isLoopback(address: string): boolean {
  if (address === "localhost") return true;
  return parseIpAddress(address)?.range() === "loopback";
}

/** Reads the token file: its first line, which must be long enough to guess at no rate. */
export async function readToken(file: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError("@postern/admin.tokenFile", `cannot read ${file} (${reason})`, { plugin: "@postern/admin" });
  }
  const token = text.split(/\r?\n/, 1)[0]!.trim();
  if (token.length < 16) {
    throw new ConfigError(
      "@postern/admin.tokenFile",
      `expected a token of 16 characters or more in ${file} (e.g. openssl rand -hex 32 > ${file})`,
      { plugin: "@postern/admin" },
    );
  }
  return token;
}

export function sameSecret(given: string | undefined, expected: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function bearer(c: Context): string | undefined {
  const header = c.req.header("authorization");
  const match = header && /^Bearer\s+(\S+)$/i.exec(header);
  return match ? match[1] : undefined;
}

/** True when the request came with the bearer header (an API client, not a browser form). */
export const usesBearer = (c: Context) => bearer(c) !== undefined;

/** Requires the token (header or cookie) when one is configured; the login page and form are open. */
export function requireToken(token: string | undefined): MiddlewareHandler {
  return async (c, next) => {
    if (token === undefined) return next();
    const path = c.req.path;
    if (path === "/login") return next();
    if (sameSecret(bearer(c), token) || sameSecret(getCookie(c, tokenCookie), token)) return next();
    if (path.startsWith("/api/")) return c.json({ error: "a bearer token is required" }, 401);
    return c.redirect("/login");
  };
}

/** The page's CSRF token: the cookie's value, set when missing. */
export function csrfToken(c: Context, secure: boolean): string {
  let value = getCookie(c, csrfCookie);
  if (!value || !/^[0-9a-f]{64}$/.test(value)) {
    value = randomBytes(32).toString("hex");
    setCookie(c, csrfCookie, value, { httpOnly: true, sameSite: "Strict", path: "/", secure });
  }
  return value;
}

/** A browser POST must carry the page's CSRF token; API clients with a bearer token have no cookie to abuse. */
export function checkCsrf(): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.method !== "POST" || usesBearer(c)) return next();
    const body = await c.req.parseBody();
    const given = typeof body[csrfField] === "string" ? (body[csrfField] as string) : undefined;
    const cookie = getCookie(c, csrfCookie);
    if (!cookie || !sameSecret(given, cookie)) return c.text("CSRF token missing or wrong; reload the page", 403);
    return next();
  };
}
