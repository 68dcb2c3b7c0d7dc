#!/usr/bin/env node
// Owns the `sockserv` command: picks the subcommand, prints the top-level help and version, and
// turns what goes wrong into one line on stderr — usage errors exit 2, failures exit 1 (their
// report: failure.ts). Each subcommand answers its own --help (args.ts).

import { readFileSync } from 'node:fs';
import { closest } from './args.js';
import { failureReport } from './failure.js';
import { serve } from './serve.js';
import { stress } from '../../stress/cli.js';
import { UsageError } from './usage-error.js';

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { run: Command; about: string }> = {
  serve: { run: serve, about: 'serve a handler module over TCP, UDP or a Unix socket, on a worker pool' },
  stress: { run: stress, about: 'load-test a server: throughput, latency percentiles, errors' },
};

const USAGE = `usage: sockserv <command> [options]

Python's socketserver for Node.js, on every core.

Commands:
${Object.entries(COMMANDS)
  .map(([name, { about }]) => `  ${name.padEnd(8)}${about}`)
  .join('\n')}

Run sockserv <command> --help for a command's options.

  -h, --help      this help
  -v, --version   sockserv's version
`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined) {
    process.stderr.write(USAGE);
    return 2;
  }
  if (name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (name === 'help') return command(rest[0]!).run(['--help']);
  return command(name).run(rest);
}

function command(name: string): { run: Command } {
  const found = COMMANDS[name];
  if (found) return found;
  const guess = closest(name, Object.keys(COMMANDS));
  throw new UsageError(`unknown command ${name} (${guess === undefined ? 'sockserv --help lists the commands' : `did you mean ${guess}?`})`);
}

/** The version in sockserv's package.json (dist/src/cli/main.js → the package root). */
function version(): string {
  return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
}

const argv = process.argv.slice(2);
main(argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      // Prefixed with the command it is about: `sockserv serve: unknown option --prot (did you mean --port?)`.
      const about = argv[0] !== undefined && argv[0] in COMMANDS ? ` ${argv[0]}` : '';
      process.stderr.write(`sockserv${about}: ${error.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(failureReport(error, false));
      process.exitCode = 1;
    }
  },
);
