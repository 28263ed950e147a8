// The tarballs global-setup.ts packed, as the test files see them.
import { inject } from "vitest";
import type { PackedPackage } from "./global-setup.ts";

export const packed: Record<string, PackedPackage> = inject("packed");

/** Packed packages in name order, for describe.each. */
export const packedList: PackedPackage[] = Object.values(packed).sort((a, b) => a.name.localeCompare(b.name));

/** The tarball of `name`; throws with the build or pack failure when there is none. */
export function tarballOf(name: string): string {
  const pkg = packed[name];
  if (!pkg) throw new Error(`${name} is not among the public packages found (packages/*/src/index.ts)`);
  if (!pkg.tarball) throw new Error(`${name} could not be built or packed:\n${pkg.problem}`);
  return pkg.tarball;
}

/** The published applications (the `postern` command), packed like the packages. */
export const packedApps: Record<string, PackedPackage> = inject("packedApps");

/** Every tarball a user could install from npm: the packages and the applications. */
export function everyTarball(): { name: string; tarball: string }[] {
  return [...packedList, ...Object.values(packedApps)].map((pkg) => {
    if (!pkg.tarball) throw new Error(`${pkg.name} could not be built or packed:\n${pkg.problem}`);
    return { name: pkg.name, tarball: pkg.tarball };
  });
}
