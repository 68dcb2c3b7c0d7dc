#!/usr/bin/env node
// Owns the `sockserv` command: picks the subcommand, turns usage errors into exit code 2 and
// startup failures into exit code 1 with one clear line.

import { SockservError } from '../errors.js';
import { SERVE_USAGE, serve } from './serve.js';
import { STRESS_USAGE, stress } from '../../stress/cli.js';
import { UsageError } from './usage-error.js';

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, Command> = {
  serve,
  stress,
};

const USAGE = `sockserv — Python's socketserver for Node.js, on every core

${SERVE_USAGE}

${STRESS_USAGE}
`;

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command "${name}"`);
  return command(rest);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`sockserv: ${error.message}\n\n${USAGE}`);
      process.exitCode = 2;
    } else if (error instanceof SockservError) {
      process.stderr.write(`sockserv: ${error.code}: ${error.message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`sockserv: ${(error as Error)?.stack ?? String(error)}\n`);
      process.exitCode = 1;
    }
  },
);
