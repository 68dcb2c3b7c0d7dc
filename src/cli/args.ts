// Owns the CLI's command-line grammar. Each command declares its options once — name, value,
// default, description — and both the parser (node:util parseArgs) and the --help text are made
// from that one table, so the help cannot leave an option out or show a stale default. Also what
// a mistyped option or command gets: one line naming the closest declared one ("did you mean
// --port?"), as git and npm do. Usage errors are UsageError (exit 2, printed by main.ts).

import { parseArgs } from 'node:util';
import { UsageError } from './usage-error.js';

export interface OptionSpec {
  /** 'string' options take a value; 'boolean' ones do not. */
  type: 'string' | 'boolean';
  /** One-letter alias (`-c`). */
  short?: string;
  /** The value's name in the help (`--port PORT`). */
  value?: string;
  /** Shown as `(default: …)` after the description. */
  default?: string | number;
  /** What the option does: one sentence or two, wrapped by the help. */
  help: string;
  /** The heading the option is listed under; options keep their order within it. */
  group: string;
}

export interface CommandSpec<O extends Record<string, OptionSpec> = Record<string, OptionSpec>> {
  /** The command's name (`serve`). */
  name: string;
  /** Its positional arguments, for the usage line (`<handler-module>`). */
  args: string;
  /** A paragraph under the usage line, wrapped by the help: what the command does. */
  about: string;
  options: O;
  /** Text after the options, printed as written (details an option's line cannot hold). */
  notes?: string;
}

/** Each option's value as typed: a string, or true for a flag given; absent when not given. */
export type OptionValues<O extends Record<string, OptionSpec>> = { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string };

export type ParsedCommand<O extends Record<string, OptionSpec>> = { help: true } | { help: false; values: OptionValues<O>; positionals: string[] };

/** Where descriptions wrap. */
const WIDTH = 100;
const NBSP = '\u00a0';

const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * Parses `argv` against `spec`. `--help` or `-h` anywhere before `--` wins: the caller prints the
 * help and exits 0, whatever else the line holds. Throws UsageError for an unknown option (naming
 * the closest known one) or a malformed value.
 */
export function parseCommand<O extends Record<string, OptionSpec>>(spec: CommandSpec<O>, argv: string[]): ParsedCommand<O> {
  const options = { ...parserOptions(spec), ...HELP_OPTION };
  // A lenient pass first: it names every option as typed, known or not, so the unknown one gets
  // our message instead of parseArgs' (which suggests quoting it as a positional).
  const { tokens } = parseArgs({ args: argv, options, allowPositionals: true, strict: false, tokens: true });
  if (tokens.some((token) => token.kind === 'option' && token.name === 'help')) return { help: true };
  for (const token of tokens) {
    if (token.kind !== 'option' || token.name in options) continue;
    // `-port` reads as the short options -p -o -r -t: report the word that was typed.
    const typed = token.rawName.length === 2 && /^-[^-]{2,}/.test(argv[token.index] ?? '') ? argv[token.index]!.split('=')[0]! : token.rawName;
    throw new UsageError(unknownOption(spec, typed));
  }
  try {
    const { values, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
    return { help: false, values: values as OptionValues<O>, positionals };
  } catch (error) {
    const message = (error as Error).message;
    const missing = /^Option '(?:-\w, )?(--[\w-]+) <value>' argument missing/.exec(message);
    throw new UsageError(missing ? `${missing[1]} needs a value` : message);
  }
}

function parserOptions(spec: CommandSpec): Record<string, { type: 'string' | 'boolean'; short?: string }> {
  return Object.fromEntries(
    Object.entries(spec.options).map(([name, option]) => [name, option.short === undefined ? { type: option.type } : { type: option.type, short: option.short }]),
  );
}

function unknownOption(spec: CommandSpec, typed: string): string {
  const guess = closest(typed.replace(/^-+/, ''), Object.keys(spec.options));
  return `unknown option ${typed} (${guess === undefined ? `sockserv ${spec.name} --help lists the options` : `did you mean --${guess}?`})`;
}

/** The usage, description and options of one command, as `--help` prints them. */
export function commandHelp(spec: CommandSpec): string {
  // Long options line up after the `-c, ` of short ones, when the command has any.
  const pad = Object.values(spec.options).some((option) => option.short !== undefined) ? '    ' : '';
  const rows = Object.entries(spec.options).map(([name, option]) => ({
    group: option.group,
    label: `${option.short === undefined ? pad : `-${option.short}, `}--${name}${option.value === undefined ? '' : ` ${option.value}`}`,
    // No-break spaces keep `(default: …)` whole on one line; wrap() turns them back into spaces.
    text: option.default === undefined ? option.help : `${option.help} ${`(default: ${option.default})`.replaceAll(' ', NBSP)}`,
  }));
  rows.push({ group: '', label: '-h, --help', text: 'this help' });
  const column = Math.max(...rows.map((row) => row.label.length)) + 4;
  const groups = [...new Set(rows.map((row) => row.group))];
  const sections = groups.map((group) => {
    const body = rows.filter((row) => row.group === group).map((row) => `  ${row.label.padEnd(column - 2)}${wrap(row.text, column)}`);
    return group === '' ? body.join('\n') : `${group}:\n${body.join('\n')}`;
  });
  const notes = spec.notes === undefined ? '' : `\n\n${spec.notes}`;
  return `usage: sockserv ${spec.name} ${spec.args} [options]\n\n${wrap(spec.about, 0)}\n\n${sections.join('\n\n')}${notes}\n`;
}

/** `text` wrapped at WIDTH, its later lines indented by `indent` (a hanging indent under the first). */
function wrap(text: string, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/[ \n]+/)) {
    if (line !== '' && indent + line.length + 1 + word.length > WIDTH) {
      lines.push(line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`).replaceAll(NBSP, ' ');
}

/**
 * The candidate closest to `typed`, if it is close enough to be a typo: within an edit distance
 * of a third of its length (at least 2, a transposition counting 1), or the only one that starts
 * with what was typed (`--max-frame` for `--max-frame-bytes`).
 */
export function closest(typed: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(typed, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (best !== undefined && bestDistance <= Math.max(2, Math.floor(typed.length / 3))) return best;
  const prefixed = typed.length >= 3 ? candidates.filter((candidate) => candidate.startsWith(typed)) : [];
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** Levenshtein distance, with a swap of two neighbours counting one edit (optimal string alignment). */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}
