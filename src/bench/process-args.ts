// Flags of bench's child processes (scp-process.ts, scp-builtin-process.ts): a bad value is one line naming
// the program and the flag, and exit 2, as for the proxy's own flags.

/** An integer flag: undefined when absent; not an integer in [min, max]: one line on stderr, exit 2. */
export function intArg(program: string, name: string, text: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!Number.isInteger(n) || n < min || n > max) {
    process.stderr.write(`${program}: --${name} ${text} is not an integer >= ${min}\n`);
    process.exit(2);
  }
  return n;
}
