// Password hashes in PHC string format: scrypt from node:crypto (always), argon2id from node:crypto
// where Node has it (24.7+). Verification derives the key with the stored parameters and compares
// with timingSafeEqual; `decoyFor` gives a hash of the same cost that never matches, so an unknown
// user costs as much time as a known one.
import * as crypto from "node:crypto";
import { promisify } from "node:util";
import { AuthError } from "./errors.ts";

const scrypt = promisify(crypto.scrypt) as (
  password: crypto.BinaryLike,
  salt: crypto.BinaryLike,
  keylen: number,
  options: crypto.ScryptOptions,
) => Promise<Buffer>;

export type HashScheme = "scrypt" | "argon2id";

export interface HashOptions {
  scheme?: HashScheme;
  /** scrypt: log2 of N (default 15: 32 MiB, about 50–100 ms on a server core). */
  cost?: number;
}

interface ScryptHash {
  scheme: "scrypt";
  ln: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

interface Argon2Hash {
  scheme: "argon2id" | "argon2i" | "argon2d";
  version: number;
  /** Memory in KiB. */
  m: number;
  t: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

type ParsedHash = ScryptHash | Argon2Hash;

type Argon2Function = (
  algorithm: string,
  parameters: {
    message: string | Buffer;
    nonce: Buffer;
    parallelism: number;
    tagLength: number;
    memory: number;
    passes: number;
  },
  callback: (error: Error | null, derived: Buffer) => void,
) => void;

/** node:crypto's argon2 (Node 24.7+), or undefined on older Node. */
const argon2 = (crypto as unknown as { argon2?: Argon2Function }).argon2;

export const defaultScryptCost = 15;
const scryptR = 8;
const scryptP = 1;
// OWASP's minimum for argon2id: 19 MiB, 2 passes, 1 lane.
const argon2Defaults = { m: 19456, t: 2, p: 1 };

export function argon2Available(): boolean {
  return argon2 !== undefined;
}

const b64 = (bytes: Buffer) => bytes.toString("base64").replace(/=+$/, "");
const unb64 = (text: string) => Buffer.from(text, "base64");

function parameters(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const part of text.split(",")) {
    const [name, value] = part.split("=");
    if (!name || value === undefined || !/^\d+$/.test(value)) return new Map();
    out.set(name, Number(value));
  }
  return out;
}

/** Parses a PHC hash string; undefined when the format or the parameters are not ones we accept. */
export function parseHash(encoded: string): ParsedHash | undefined {
  const parts = encoded.split("$");
  if (parts[0] !== "") return undefined;
  if (parts[1] === "scrypt" && parts.length === 5) {
    const params = parameters(parts[2]!);
    const ln = params.get("ln");
    const r = params.get("r");
    const p = params.get("p");
    // Bounds keep a typo in the file from asking for gigabytes per login.
    if (ln === undefined || r === undefined || p === undefined) return undefined;
    if (ln < 1 || ln > 20 || r < 1 || r > 32 || p < 1 || p > 16) return undefined;
    const salt = unb64(parts[3]!);
    const hash = unb64(parts[4]!);
    if (salt.length < 8 || hash.length < 16) return undefined;
    return { scheme: "scrypt", ln, r, p, salt, hash };
  }
  if ((parts[1] === "argon2id" || parts[1] === "argon2i" || parts[1] === "argon2d") && parts.length === 6) {
    const version = Number(/^v=(\d+)$/.exec(parts[2]!)?.[1]);
    const params = parameters(parts[3]!);
    const m = params.get("m");
    const t = params.get("t");
    const p = params.get("p");
    if (version !== 19 || m === undefined || t === undefined || p === undefined) return undefined;
    if (m < 8 || m > 4 * 1024 * 1024 || t < 1 || t > 64 || p < 1 || p > 64) return undefined;
    const salt = unb64(parts[4]!);
    const hash = unb64(parts[5]!);
    if (salt.length < 8 || hash.length < 16) return undefined;
    return { scheme: parts[1], version, m, t, p, salt, hash };
  }
  return undefined;
}

/** Why a hash string cannot be used here, or undefined when it can. */
export function hashProblem(encoded: string): string | undefined {
  const parsed = parseHash(encoded);
  if (!parsed)
    return 'expected a PHC hash such as "$scrypt$ln=15,r=8,p=1$<salt>$<hash>" (write it with `postern user add`)';
  if (parsed.scheme !== "scrypt" && !argon2) return `${parsed.scheme} hashes need Node 24.7 or later`;
  return undefined;
}

async function derive(password: string, parsed: ParsedHash, salt: Buffer, length: number): Promise<Buffer> {
  if (parsed.scheme === "scrypt") {
    const N = 2 ** parsed.ln;
    return scrypt(password, salt, length, {
      N,
      r: parsed.r,
      p: parsed.p,
      maxmem: 256 * N * parsed.r + 16 * 1024 * 1024,
    });
  }
  if (!argon2) throw new AuthError("POSTERN_AUTH_HASH_UNSUPPORTED", `${parsed.scheme} hashes need Node 24.7 or later`);
  const run = argon2;
  return new Promise((resolve, reject) =>
    run(
      parsed.scheme,
      { message: password, nonce: salt, parallelism: parsed.p, tagLength: length, memory: parsed.m, passes: parsed.t },
      (error, derived) => (error ? reject(error) : resolve(derived)),
    ),
  );
}

/** A new hash of `password` with a random salt. */
export async function hashPassword(password: string, options: HashOptions = {}): Promise<string> {
  const salt = crypto.randomBytes(16);
  if ((options.scheme ?? "scrypt") === "argon2id") {
    if (!argon2) throw new AuthError("POSTERN_AUTH_HASH_UNSUPPORTED", "argon2id needs Node 24.7 or later; use scrypt");
    const parsed: Argon2Hash = { scheme: "argon2id", version: 19, ...argon2Defaults, salt, hash: Buffer.alloc(0) };
    const hash = await derive(password, parsed, salt, 32);
    return `$argon2id$v=19$m=${parsed.m},t=${parsed.t},p=${parsed.p}$${b64(salt)}$${b64(hash)}`;
  }
  const ln = options.cost ?? defaultScryptCost;
  if (!Number.isInteger(ln) || ln < 1 || ln > 20) throw new RangeError("scrypt cost must be an integer 1–20");
  const parsed: ScryptHash = { scheme: "scrypt", ln, r: scryptR, p: scryptP, salt, hash: Buffer.alloc(0) };
  const hash = await derive(password, parsed, salt, 32);
  return `$scrypt$ln=${ln},r=${scryptR},p=${scryptP}$${b64(salt)}$${b64(hash)}`;
}

/** Whether `password` matches `encoded`; the comparison takes the same time wherever they differ. */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const parsed = parseHash(encoded);
  if (!parsed) return false;
  const derived = await derive(password, parsed, parsed.salt, parsed.hash.length);
  return crypto.timingSafeEqual(derived, parsed.hash);
}

/** A hash with the same scheme and cost as `model` that no password matches. */
export function decoyFor(model: string | undefined): string {
  const parsed = model ? parseHash(model) : undefined;
  const salt = b64(crypto.randomBytes(16));
  const hash = b64(crypto.randomBytes(parsed?.hash.length ?? 32));
  if (parsed && parsed.scheme !== "scrypt" && argon2) {
    return `$${parsed.scheme}$v=19$m=${parsed.m},t=${parsed.t},p=${parsed.p}$${salt}$${hash}`;
  }
  const scryptModel = parsed?.scheme === "scrypt" ? parsed : { ln: defaultScryptCost, r: scryptR, p: scryptP };
  return `$scrypt$ln=${scryptModel.ln},r=${scryptModel.r},p=${scryptModel.p}$${salt}$${hash}`;
}
