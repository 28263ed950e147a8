// node:util parseArgs in strict mode, with its errors turned into UsageError so every command
// reports a bad command line the same way (one line, exit 2).
import { type ParseArgsConfig, parseArgs } from "node:util";
import { UsageError } from "./usage-error.ts";

type OptionsConfig = NonNullable<ParseArgsConfig["options"]>;

export function parseCommandArgs<const Options extends OptionsConfig>(argv: string[], options: Options) {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (error) {
    // parseArgs opens with the sentence that matters ("Unknown option '--prot'") and then adds
    // advice about "--" that rarely applies; keep the first sentence.
    throw new UsageError((error as Error).message.split(". ", 1)[0]!);
  }
}
