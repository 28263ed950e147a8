// What a site is called and which mail domain it serves: the package name is checked with npm's
// own rules, the domain and host name as DNS names, so the generated config is valid as written.
import { packageNameProblem } from "create-postern-plugin/scaffold";

export class SiteOptionError extends Error {
  readonly code = "CREATE_POSTERN_BAD_OPTION";
  constructor(message: string) {
    super(message);
    this.name = "SiteOptionError";
  }
}

const label = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** A lower-case DNS name of two labels or more, e.g. "example.com". */
export function checkDomain(option: string, value: string): string {
  const name = value.trim().toLowerCase().replace(/\.$/, "");
  const labels = name.split(".");
  if (name.length > 253 || labels.length < 2 || !labels.every((part) => label.test(part))) {
    throw new SiteOptionError(`${option}: expected a domain name such as example.com (got "${value}")`);
  }
  return name;
}

export function checkSiteName(name: string): string {
  const problem = packageNameProblem(name);
  if (problem !== undefined) throw new SiteOptionError(problem);
  return name;
}
