// A small Dockerfile reader for tests: enough of the syntax to check what an image would contain and run
// without a Docker engine. Instructions (continuation lines joined, comments dropped), stages, WORKDIR in
// effect, COPY sources and destinations, and a map from a path in the final image back to the repository.

import path from 'node:path';

export interface Instruction {
  keyword: string;
  args: string;
  line: number;
  /** The WORKDIR in effect when this instruction runs. */
  workdir: string;
}

export interface Copy {
  /** --from=STAGE, or undefined for the build context (the repository). */
  from: string | undefined;
  sources: string[];
  /** Absolute, resolved against the WORKDIR in effect. */
  dest: string;
  destIsDir: boolean;
}

export interface Stage {
  index: number;
  base: string;
  name: string | undefined;
  instructions: Instruction[];
  copies: Copy[];
  /** WORKDIR at the end of the stage. */
  workdir: string;
}

/** Split into instructions: `\` continuations joined, comment lines (also inside continuations) dropped. */
export function instructions(text: string): Array<{ keyword: string; args: string; line: number }> {
  const out: Array<{ keyword: string; args: string; line: number }> = [];
  let pending = '';
  let start = 0;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const trimmed = raw.trim();
    if (trimmed.startsWith('#') || (trimmed === '' && pending === '')) continue;
    if (pending === '') start = i + 1;
    if (/\\\s*$/.test(raw)) {
      pending += raw.replace(/\\\s*$/, '') + ' ';
      continue;
    }
    pending += raw;
    const m = /^\s*(\w+)\s*(.*)$/s.exec(pending);
    if (m) out.push({ keyword: m[1]!.toUpperCase(), args: m[2]!.trim(), line: start });
    pending = '';
  }
  return out;
}

/** The JSON-array (exec) form of CMD / ENTRYPOINT / RUN / VOLUME, or undefined for the shell form. Docker
 * itself falls back to the shell form whenever the text is not a valid JSON array of strings. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith('[')) return undefined;
  try {
    const parsed: unknown = JSON.parse(args);
    if (Array.isArray(parsed) && parsed.every((a) => typeof a === 'string')) return parsed as string[];
  } catch {
    // not JSON: the shell form
  }
  return undefined;
}

function splitFlags(args: string): { flags: Map<string, string>; rest: string } {
  const flags = new Map<string, string>();
  let rest = args;
  for (;;) {
    const m = /^--([\w-]+)(?:=(\S*))?\s+/.exec(rest);
    if (!m) return { flags, rest };
    flags.set(m[1]!, m[2] ?? '');
    rest = rest.slice(m[0].length);
  }
}

export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  for (const ins of instructions(text)) {
    if (ins.keyword === 'FROM') {
      const { rest } = splitFlags(ins.args);
      const m = /^(\S+)(?:\s+as\s+(\S+))?\s*$/i.exec(rest);
      const parent = m ? stages.find((s) => s.name === m[1]) : undefined;
      stages.push({
        index: stages.length,
        base: m?.[1] ?? rest,
        name: m?.[2],
        instructions: [],
        copies: [],
        workdir: parent?.workdir ?? '/',
      });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) continue; // ARG before FROM, parser directives
    if (ins.keyword === 'WORKDIR') stage.workdir = path.posix.resolve(stage.workdir, ins.args);
    stage.instructions.push({ ...ins, workdir: stage.workdir });
    if (ins.keyword === 'COPY' || ins.keyword === 'ADD') {
      const { flags, rest } = splitFlags(ins.args);
      const words = execForm(rest) ?? rest.split(/\s+/);
      const destText = words.at(-1)!;
      const sources = words.slice(0, -1);
      stage.copies.push({
        from: flags.get('from'),
        sources,
        dest: path.posix.resolve(stage.workdir, destText),
        destIsDir: destText.endsWith('/') || destText === '.' || sources.length > 1,
      });
    }
  }
  return stages;
}

export function stageByName(stages: readonly Stage[], ref: string): Stage | undefined {
  return stages.find((s) => s.name === ref) ?? (/^\d+$/.test(ref) ? stages[Number(ref)] : undefined);
}

/**
 * Where a path of a stage's filesystem comes from in the repository, through the stage's COPY instructions
 * (the last one that covers the path wins). A COPY --from=STAGE source is taken to lie in that stage's
 * WORKDIR laid out as the repository is (the build stage copies the repository's files there and builds in
 * place, as CI builds in the clone). `isDir(repoPath)` tells whether a repository path is a directory.
 * Undefined when no COPY provides the path.
 */
export function imageToRepo(stages: readonly Stage[], stage: Stage, imagePath: string, isDir: (repoPath: string) => boolean, depth = 0): string | undefined {
  if (depth > stages.length) return undefined;
  for (const copy of [...stage.copies].reverse()) {
    for (const source of [...copy.sources].reverse()) {
      // The source, as a repository path (relative, posix).
      let repoSource: string | undefined;
      if (copy.from === undefined) {
        repoSource = path.posix.normalize(source).replace(/\/$/, '');
      } else {
        const from = stageByName(stages, copy.from);
        if (!from) continue; // an external image
        const abs = path.posix.resolve(from.workdir, source);
        const viaStage = imageToRepo(stages, from, abs, isDir, depth + 1);
        if (viaStage === undefined) {
          const rel = path.posix.relative(from.workdir, abs);
          if (rel.startsWith('..')) continue;
          repoSource = rel === '' ? '.' : rel; // built in that stage's WORKDIR, as in the repository
        } else {
          repoSource = viaStage;
        }
      }
      if (isDir(repoSource)) {
        // A directory's contents are copied into dest.
        const rel = path.posix.relative(copy.dest, imagePath);
        if (rel.startsWith('..') || path.posix.isAbsolute(rel)) continue;
        return rel === '' ? repoSource : path.posix.join(repoSource, rel);
      }
      const target = copy.destIsDir ? path.posix.join(copy.dest, path.posix.basename(repoSource)) : copy.dest;
      if (target === imagePath) return repoSource;
    }
  }
  return undefined;
}

/** The value of the last instruction `keyword` in a stage. */
export function last(stage: Stage, keyword: string): Instruction | undefined {
  return stage.instructions.filter((i) => i.keyword === keyword).at(-1);
}

/** A .dockerignore check: whether `file` (a repository path) is left out of the build context. Last match
 * wins; `!` re-includes; a pattern matching a parent directory matches everything under it. */
export function dockerignored(patterns: readonly string[], file: string): boolean {
  const parts = file.split('/');
  let ignored = false;
  for (const raw of patterns) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    const pattern = path.posix.normalize(negate ? line.slice(1).trim() : line).replace(/^\/|\/$/g, '');
    const re = globToRegExp(pattern);
    for (let i = 1; i <= parts.length; i++) {
      if (re.test(parts.slice(0, i).join('/'))) {
        ignored = !negate;
        break;
      }
    }
  }
  return ignored;
}

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      re += '.*';
      i++;
      if (glob[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
