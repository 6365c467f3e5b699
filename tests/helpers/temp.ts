/**
 * Temporary files and directories that remove themselves when disposed of
 * (`await using file = await tempFile(config)`).
 *
 * @module
 */

/** A temporary path, removed (recursively) when disposed of. */
export interface TempPath extends AsyncDisposable {
  readonly path: string;
}

function removing(path: string): TempPath {
  return { path, [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }) };
}

/** A temporary `.json` file holding `content`: a string as it is, anything else as JSON. */
export async function tempFile(content: unknown): Promise<TempPath> {
  const file = removing(await Deno.makeTempFile({ suffix: ".json" }));
  await Deno.writeTextFile(
    file.path,
    typeof content === "string" ? content : JSON.stringify(content),
  );
  return file;
}

/** A temporary directory, removed with everything in it. */
export async function tempDir(prefix: string): Promise<TempPath> {
  return removing(await Deno.makeTempDir({ prefix }));
}
