/**
 * Finds a Bun to run the raw Bun baseline (`baseline_bun.ts`) with: the
 * `bun` on PATH, else the one `npx -y bun@BUN_VERSION` brings from the npm
 * registry. Returns the binary's path (so that the process measured is Bun
 * itself, not an `npx` wrapper), or `undefined` with the reason logged.
 *
 * @module
 */

/** The Bun the benchmarks pin when none is installed. */
export const BUN_VERSION = "1.4.5";

const PRINT_PATH = ["-e", "console.log(process.execPath)"];

/** The path of a working Bun binary, or `undefined` (and why, on stderr). */
export async function findBun(): Promise<string | undefined> {
  const tries: [string, string[]][] = [
    ["bun", PRINT_PATH],
    ["npx", ["-y", `bun@${BUN_VERSION}`, ...PRINT_PATH]],
  ];
  const failures: string[] = [];
  for (const [command, args] of tries) {
    try {
      const output = await new Deno.Command(command, { args, stdout: "piped", stderr: "piped" })
        .output();
      const path = new TextDecoder().decode(output.stdout).trim();
      if (output.success && path) return path;
      failures.push(`${command}: exit ${output.code} ${new TextDecoder().decode(output.stderr)}`);
    } catch (error) {
      failures.push(`${command}: ${error instanceof Error ? error.message : error}`);
    }
  }
  console.error(`bench: NO BUN, the raw Bun baseline is skipped (${failures.join("; ")})`);
  return undefined;
}
