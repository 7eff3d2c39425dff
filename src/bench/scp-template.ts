// `bench --scp-command TEMPLATE`: the template split into argv once, the way a POSIX shell splits words
// (blanks separate words; '…' quotes literally; "…" quotes with \" \\ \$ \` escapes; \ escapes one
// character outside quotes), and then {port}, {pdu} and {out} substituted inside each word. No shell ever
// reads the result, so a substituted value is always exactly one word (or part of one), never code. Shell
// syntax (pipes, redirections, ;, &, $, `, globbing) is refused with the remedy: write `sh -c '…' sh {port}`
// so that the values reach the script as positional parameters ("$1"), never as its text.
// `{{` and `}}` are literal braces.

import { ConfigError } from '../values/errors.js';

export const PLACEHOLDERS = ['port', 'pdu', 'out'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export type TemplateValues = Record<Placeholder, string>;

/** One argv word: literal text and placeholders, in order. */
type Part = { text: string } | { name: Placeholder };
export interface ScpTemplate {
  /** The template as given (for messages and run.json). */
  source: string;
  words: Part[][];
}

/** Characters a shell would treat as syntax when not quoted: refused, so nothing is silently taken literally. */
const SHELL_SYNTAX = new Set(['|', '&', ';', '<', '>', '(', ')', '$', '`', '*', '?', '[', '#', '~']);

const flag = '--scp-command';

/** Split a word's text into literal parts and placeholders; `{{` / `}}` are literal braces. */
function placeholders(text: string, parts: Part[]): void {
  let i = 0;
  let lit = '';
  while (i < text.length) {
    const c = text[i]!;
    if ((c === '{' || c === '}') && text[i + 1] === c) {
      lit += c;
      i += 2;
    } else if (c === '{') {
      const end = text.indexOf('}', i);
      if (end < 0) throw new ConfigError(`${flag}: unclosed "{" in ${JSON.stringify(text)} (a literal brace is written {{)`);
      const name = text.slice(i + 1, end);
      if (!(PLACEHOLDERS as readonly string[]).includes(name)) {
        throw new ConfigError(`${flag}: unknown placeholder {${name}} (known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(', ')}; a literal brace is written {{)`);
      }
      if (lit) parts.push({ text: lit });
      lit = '';
      parts.push({ name: name as Placeholder });
      i = end + 1;
    } else if (c === '}') {
      throw new ConfigError(`${flag}: unmatched "}" in ${JSON.stringify(text)} (a literal brace is written }})`);
    } else {
      lit += c;
      i++;
    }
  }
  if (lit) parts.push({ text: lit });
}

/** Parse a template; a ConfigError (one line, naming --scp-command) for anything it cannot run. */
export function parseScpTemplate(source: string): ScpTemplate {
  const words: Part[][] = [];
  let word: Part[] | undefined;
  let chunk = '';
  /** Flush the characters read so far into the current word, resolving placeholders in them. */
  const flush = (): void => {
    word ??= [];
    placeholders(chunk, word);
    chunk = '';
  };
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (c === ' ' || c === '\t' || c === '\n') {
      if (word !== undefined || chunk) {
        flush();
        words.push(word!);
        word = undefined;
      }
      i++;
    } else if (c === "'") {
      const end = source.indexOf("'", i + 1);
      if (end < 0) throw new ConfigError(`${flag}: unclosed single quote in ${JSON.stringify(source)}`);
      chunk += source.slice(i + 1, end);
      word ??= [];
      i = end + 1;
    } else if (c === '"') {
      let j = i + 1;
      for (;;) {
        if (j >= source.length) throw new ConfigError(`${flag}: unclosed double quote in ${JSON.stringify(source)}`);
        const d = source[j]!;
        if (d === '"') break;
        if (d === '\\' && j + 1 < source.length && '"\\$`'.includes(source[j + 1]!)) {
          chunk += source[j + 1];
          j += 2;
        } else if (d === '$' || d === '`') {
          throw new ConfigError(
            `${flag}: ${JSON.stringify(d)} inside double quotes would be expanded by a shell, and no shell runs the template: quote it with '…', or run sh -c '…' explicitly`,
          );
        } else {
          chunk += d;
          j++;
        }
      }
      word ??= [];
      i = j + 1;
    } else if (c === '\\') {
      if (i + 1 >= source.length) throw new ConfigError(`${flag}: a trailing backslash in ${JSON.stringify(source)}`);
      chunk += source[i + 1];
      i += 2;
    } else if (SHELL_SYNTAX.has(c) && !(c === '#' && (word !== undefined || chunk)) && !(c === '~' && (word !== undefined || chunk))) {
      throw new ConfigError(
        `${flag}: ${JSON.stringify(c)} is shell syntax and no shell runs the template (it is split into words and run directly): ` +
          `quote it, or write sh -c '…' sh {port} {pdu} {out} and use "$1" "$2" "$3" in the script`,
      );
    } else {
      chunk += c;
      i++;
    }
  }
  if (word !== undefined || chunk) {
    flush();
    words.push(word!);
  }
  if (words.length === 0) throw new ConfigError(`${flag}: the template is empty`);
  const first = words[0]!;
  if (first.some((p) => 'name' in p)) throw new ConfigError(`${flag}: the program (the first word) cannot be a placeholder`);
  if (!words.some((w) => w.some((p) => 'name' in p && p.name === 'port'))) {
    throw new ConfigError(`${flag}: the template has no {port}: bench picks the port and must tell the SCP`);
  }
  return { source, words };
}

/** argv (program first) with the values substituted: each word stays one argument. */
export function scpArgv(t: ScpTemplate, values: TemplateValues): string[] {
  return t.words.map((w) => w.map((p) => ('name' in p ? values[p.name] : p.text)).join(''));
}
