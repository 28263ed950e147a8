// Talks to the admin API of the running server (`postern status`, `postern trace`): finds the
// @postern/admin plugin in the config, reads its token file, and trusts exactly its certificate
// when it speaks HTTPS (a self-signed one works without turning verification off).
import { readFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Plugin } from "@postern/core";

export interface AdminAccess {
  readonly url: string;
  readonly tokenFile: string | undefined;
  readonly certificate: string | undefined;
}

const isAccess = (value: unknown): value is AdminAccess =>
  typeof value === "object" && value !== null && typeof (value as AdminAccess).url === "string";

/** The admin plugin's access, from a loaded config (the plugin exposes it as `access`). */
export function adminAccessOf(plugins: readonly Plugin[]): AdminAccess | undefined {
  for (const plugin of plugins) {
    const access = (plugin as { access?: unknown }).access;
    if (plugin.name === "@postern/admin" && isAccess(access)) return access;
  }
  return undefined;
}

export class AdminRequestError extends Error {
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.name = "AdminRequestError";
    this.status = status;
  }
}

/** GETs `path` from the admin API and parses the JSON answer. */
export async function adminGet<T>(access: AdminAccess, path: string, timeoutMs = 10_000): Promise<T> {
  const token = access.tokenFile ? (await readFile(access.tokenFile, "utf8")).split(/\r?\n/, 1)[0]!.trim() : undefined;
  const ca = access.certificate ? await readFile(access.certificate) : undefined;
  const url = new URL(path, access.url);
  const send = url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise<T>((resolve, reject) => {
    const request = send(
      url,
      {
        method: "GET",
        headers: { accept: "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
        timeout: timeoutMs,
        ...(ca ? { ca, checkServerIdentity: () => undefined } : {}),
      },
      (response) => {
        let body = "";
        response.setEncoding("utf8").on("data", (chunk: string) => {
          body += chunk;
        });
        response.on("end", () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(body);
          } catch {
            return reject(
              new AdminRequestError(`${url.href} answered ${response.statusCode} without JSON`, response.statusCode),
            );
          }
          if (response.statusCode !== 200) {
            const error = (parsed as { error?: unknown }).error;
            return reject(
              new AdminRequestError(
                typeof error === "string" ? error : `HTTP ${response.statusCode}`,
                response.statusCode,
              ),
            );
          }
          resolve(parsed as T);
        });
      },
    );
    request.on("timeout", () => request.destroy(new Error(`no answer from ${url.origin} within ${timeoutMs} ms`)));
    request.on("error", (error: NodeJS.ErrnoException) =>
      reject(
        new AdminRequestError(
          error.code === "ECONNREFUSED"
            ? `nothing listens on ${url.origin}: is postern start running with @postern/admin?`
            : `${url.origin}: ${error.message}`,
        ),
      ),
    );
    request.end();
  });
}
