/**
 * The documentation holds together for someone who cloned the repository and
 * nothing else: every relative link of every Markdown file names a file or
 * folder of the repository, every anchor names a heading of the file it points
 * to, and no file points at the team's files outside the repository.
 *
 * @module
 */
import assert from "node:assert/strict";
import { dirname, join, relative, resolve } from "node:path";
import { ROOT } from "./helpers/process.ts";

/** Folders that are not part of the repository's content. */
const SKIPPED = new Set([".git", "node_modules", "scratch", "bench/results"]);

async function repositoryFiles(dir = ""): Promise<string[]> {
  const files: string[] = [];
  for await (const entry of Deno.readDir(join(ROOT, dir))) {
    const path = dir ? `${dir}/${entry.name}` : entry.name;
    if (SKIPPED.has(path)) continue;
    if (entry.isDirectory) files.push(...await repositoryFiles(path));
    else if (entry.isFile) files.push(path);
  }
  return files;
}

/** Markdown without its fenced code blocks and code spans, where brackets are not links. */
function prose(markdown: string): string {
  return markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "").replace(/`[^`\n]*`/g, "");
}

/** The targets of inline links, images and reference definitions. */
function linkTargets(markdown: string): string[] {
  const text = prose(markdown);
  const inline = [...text.matchAll(/!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)];
  const references = [...text.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)];
  const anchors = [...text.matchAll(/<a\s[^>]*href="([^"]+)"/g)];
  return [...inline, ...references, ...anchors].map((match) => match[1]);
}

/** The anchors GitHub gives a file's headings (`## Embedding (\`mod.ts\`)` → `embedding-modts`). */
function headingAnchors(markdown: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  const withoutCode = markdown.replace(/^(```|~~~)[^\n]*\n[\s\S]*?^\1[^\n]*$/gm, "");
  for (const [, heading] of withoutCode.matchAll(/^#{1,6}\s+(.+?)\s*#*\s*$/gm)) {
    const text = heading.replace(/\[([^\]]*)\]\([^)]*\)/g, "$1").replace(/[`*_]/g, "");
    const slug = text.toLowerCase().replace(/[^\p{L}\p{N}\s-]/gu, "").replace(/\s/g, "-");
    const count = seen.get(slug) ?? 0;
    seen.set(slug, count + 1);
    anchors.add(count === 0 ? slug : `${slug}-${count}`);
  }
  return anchors;
}

/** What is wrong with `target` as a link from `file`, if anything. */
async function linkProblem(file: string, target: string): Promise<string | undefined> {
  if (/^[a-z][a-z+.-]*:/i.test(target)) {
    return /^(https?|mailto):/i.test(target) ? undefined : "a scheme other than http(s) or mailto";
  }
  const [path, anchor] = target.split("#", 2);
  if (path.startsWith("/")) return "an absolute path";
  const absolute = path ? resolve(ROOT, dirname(file), decodeURIComponent(path)) : join(ROOT, file);
  const inside = relative(ROOT, absolute);
  if (inside.startsWith("..")) return "a path outside the repository";
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(absolute);
  } catch {
    return "no such file or folder";
  }
  if (anchor === undefined || !stat.isFile || !absolute.endsWith(".md")) return undefined;
  const anchors = headingAnchors(await Deno.readTextFile(absolute));
  return anchors.has(anchor) ? undefined : `no heading #${anchor} in ${inside}`;
}

Deno.test("every relative link of every Markdown file exists, inside the repository, with its anchor", async () => {
  const problems: string[] = [];
  let checked = 0;
  for (const file of (await repositoryFiles()).filter((path) => path.endsWith(".md"))) {
    for (const target of linkTargets(await Deno.readTextFile(join(ROOT, file)))) {
      checked++;
      const problem = await linkProblem(file, target);
      if (problem) problems.push(`${file}: (${target}) ${problem}`);
    }
  }
  assert.deepEqual(problems, []);
  assert.ok(checked > 50, `only ${checked} links found: is the link pattern right?`);
});

Deno.test("the link checker finds broken paths, escapes and anchors", async () => {
  assert.equal(await linkProblem("README.md", "docs/protocol.md#close-codes"), undefined);
  assert.equal(await linkProblem("docs/README.md", "../README.md#embedding-modts"), undefined);
  assert.equal(await linkProblem("docs/protocol.md", "#the-http-retry-rules"), undefined);
  assert.match(String(await linkProblem("README.md", "docs/nothing.md")), /no such file/);
  assert.match(
    String(await linkProblem("README.md", "../../elsewhere/x.md")),
    /outside the repository/,
  );
  assert.match(String(await linkProblem("README.md", "docs/protocol.md#nowhere")), /no heading/);
  assert.deepEqual(
    linkTargets("[a](x.md) `[b](y.md)`\n```\n[c](z.md)\n```\n[d]: w.md\n![e](i.png#frag)"),
    ["x.md", "i.png#frag", "w.md"],
  );
});

Deno.test("no file outside .ci/ points at the team's files outside the repository", async () => {
  // Built from parts so that this file does not match itself.
  const outside = [["..", "shared"].join("/"), ["", "work", ""].join("/")];
  const problems: string[] = [];
  for (const file of await repositoryFiles()) {
    if (file.startsWith(".ci/")) continue;
    const bytes = await Deno.readFile(join(ROOT, file));
    if (bytes.includes(0)) continue;
    const text = new TextDecoder().decode(bytes);
    for (const needle of outside) {
      if (text.includes(needle)) problems.push(`${file} contains ${needle}`);
    }
  }
  assert.deepEqual(problems, []);
});
