// A command line the command cannot make sense of (unknown option, missing value, conflicting
// options). cli.ts prints it with a pointer to the command's help and exits 2, the convention for
// usage errors.

export class UsageError extends Error {
  override readonly name = "UsageError";
}
