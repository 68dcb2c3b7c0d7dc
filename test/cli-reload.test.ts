// Reloading through the CLI (src/cli/reload.ts, src/cli/watch.ts), as a user runs it: SIGHUP to
// `sockserv serve` reloads the handler module from disk while a connection stays open, a module
// that does not load is logged with file:line and changes nothing; `--watch` reloads a TypeScript
// handler when it or a file it imports changes (one line per reload), and follows imports added
// later; with --processes, SIGHUP to the primary reloads each process in turn.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Cli, killAll } from './helpers/cli-process.js';
import { fixture } from './helpers/client.js';
import { type Peer, Registry } from './helpers/net.js';

const registry = new Registry();
const dirs: string[] = [];
afterEach(async () => {
  await registry.cleanup();
  killAll();
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The built sockserv, by URL: modules in a temp directory cannot resolve 'sockserv'. */
const SOCKSERV = new URL('../dist/src/index.js', import.meta.url).href;

function project(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'sockserv-cli-reload-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  for (const [name, source] of Object.entries(files)) writeFileSync(join(dir, name), source);
  return dir;
}

/** A JavaScript handler answering "<word> <request>". */
const jsHandler = (word: string) =>
  `import { BaseRequestHandler } from '${SOCKSERV}';\nexport default class H extends BaseRequestHandler {\n  handle() {\n    return \`${word} \${this.request}\`;\n  }\n}\n`;

/** Sends one line on the open connection and waits for its reply. */
async function ask(peer: Peer, line: string): Promise<string> {
  const before = peer.lines.length;
  peer.write(`${line}\n`);
  await peer.untilLines(before + 1);
  return peer.lines[before]!;
}

/** `path:LINE:` for the first line of `source` that contains `marker`, as a pattern. */
function at(path: string, source: string, marker: string): RegExp {
  const line = source.split('\n').findIndex((l) => l.includes(marker)) + 1;
  return new RegExp(`${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:${line}:\\d+`);
}

function count(text: string, pattern: RegExp): number {
  return text.match(new RegExp(pattern.source, 'g'))?.length ?? 0;
}

describe('sockserv serve and SIGHUP', () => {
  test('SIGHUP reloads the module from disk; the open connection gets the new version; a broken module is logged with file:line and changes nothing', async () => {
    const dir = project({ 'h.js': jsHandler('one') });
    const cli = new Cli(['serve', join(dir, 'h.js'), '--port', '0', '--workers', '1']);
    const peer = await registry.peer(await cli.port());
    expect(await ask(peer, 'a')).toBe('one a');
    writeFileSync(join(dir, 'h.js'), jsHandler('two'));
    cli.child.kill('SIGHUP');
    await cli.until(() => /reloaded h\.js in \d+ ms \(version 2\)/.test(cli.stderr), 'the reload line');
    expect(await ask(peer, 'b')).toBe('two b');
    const broken = `${jsHandler('three')}\nexport const broken = (;\n`;
    writeFileSync(join(dir, 'h.js'), broken);
    cli.child.kill('SIGHUP');
    await cli.until(() => cli.stderr.includes('reload failed, still serving version 2'), 'the failure line');
    await cli.until(() => cli.stderr.includes('ERR_HANDLER_LOAD: cannot load handler module') && at(join(dir, 'h.js'), broken, 'broken').test(cli.stderr), 'the error with its file and line');
    expect(await ask(peer, 'c')).toBe('two c');
    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
    expect(peer.lines).toEqual(['one a', 'two b', 'two c']);
  });

  test('--inline: SIGHUP logs ERR_UNSUPPORTED and the server goes on', async () => {
    const cli = new Cli(['serve', fixture('version-1'), '--port', '0', '--inline']);
    const peer = await registry.peer(await cli.port());
    cli.child.kill('SIGHUP');
    await cli.until(() => cli.stderr.includes('reload failed, still serving version 1: ERR_UNSUPPORTED'), 'the failure line');
    expect(await ask(peer, '1')).toBe('v1 1');
    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
  });

  test.each([
    ['--watch with --inline', ['--watch', '--inline'], /--watch/],
    ['--watch with --processes', ['--watch', '--processes', '2'], /--watch/],
  ])('%s exits 2', async (_what, flags, message) => {
    const cli = new Cli(['serve', fixture('version-1'), '--port', '0', ...flags]);
    expect(await cli.exit()).toBe(2);
    expect(cli.stderr).toMatch(message);
  });
});

describe('sockserv serve --watch', () => {
  test('a TypeScript handler reloads when it or a file it imports changes, one line per reload; a syntax error is logged with file:line while the version before serves', async () => {
    const handler = (imports: string, expression: string) =>
      `import { BaseRequestHandler } from '${SOCKSERV}';\n${imports}\nexport default class H extends BaseRequestHandler {\n  override handle(): string {\n    return \`\${${expression}} \${this.request.toString() as string}\`;\n  }\n}\n`;
    const dir = project({
      'reply.ts': `export const WORD: string = 'one';\n`,
      'handler.ts': handler(`import { WORD } from './reply.ts';`, 'WORD'),
    });
    const cli = new Cli(['serve', join(dir, 'handler.ts'), '--port', '0', '--workers', '1', '--watch']);
    const peer = await registry.peer(await cli.port());
    // stderr is a pipe of its own: the line may come after stdout's listening line.
    await cli.until(() => cli.stderr.includes('watching handler.ts and the 1 file it imports'), 'the watching line');
    expect(await ask(peer, 'a')).toBe('one a');

    // A file it imports changes.
    writeFileSync(join(dir, 'reply.ts'), `export const WORD: string = 'two';\n`);
    await cli.until(() => /reloaded handler\.ts in \d+ ms \(version 2\)/.test(cli.stderr), 'reload 2');
    expect(await ask(peer, 'b')).toBe('two b');

    // The handler breaks: the error names the file and line; version 2 serves on.
    const broken = handler(`import { WORD } from './reply.ts';`, 'WORD').replace('override handle(): string {', 'override handle(): string {\n    const x = ;');
    writeFileSync(join(dir, 'handler.ts'), broken);
    await cli.until(() => cli.stderr.includes('reload failed, still serving version 2'), 'the failure line');
    await cli.until(() => at(join(dir, 'handler.ts'), broken, 'const x = ;').test(cli.stderr), 'the error with its file and line');
    expect(await ask(peer, 'c')).toBe('two c');

    // Fixed, with a new import: version 3; then a change of that new file: version 4.
    writeFileSync(join(dir, 'extra.ts'), `export const EXTRA: string = 'three';\n`);
    writeFileSync(join(dir, 'handler.ts'), handler(`import { EXTRA } from './extra.ts';`, 'EXTRA'));
    await cli.until(() => /\(version 3\)/.test(cli.stderr), 'reload 3');
    expect(await ask(peer, 'd')).toBe('three d');
    writeFileSync(join(dir, 'extra.ts'), `export const EXTRA: string = 'four';\n`);
    await cli.until(() => /\(version 4\)/.test(cli.stderr), 'reload 4');
    expect(await ask(peer, 'e')).toBe('four e');
    // A file nobody imports: nothing happens (the next reload is version 5, from the change after it).
    writeFileSync(join(dir, 'notes.txt'), 'not imported\n');
    writeFileSync(join(dir, 'extra.ts'), `export const EXTRA: string = 'five';\n`);
    await cli.until(() => /\(version 5\)/.test(cli.stderr), 'reload 5');
    expect(await ask(peer, 'f')).toBe('five f');

    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
    // One line per reload: 4 reloads and 1 failure, each logged once; the connection never dropped.
    expect(count(cli.stderr, /reloaded handler\.ts in \d+ ms/)).toBe(4);
    expect(count(cli.stderr, /reload failed/)).toBe(1);
    expect(peer.lines).toEqual(['one a', 'two b', 'two c', 'three d', 'four e', 'five f']);
  });
});

describe('sockserv serve --processes 2 and SIGHUP', () => {
  test('SIGHUP to the primary reloads each process in turn; every process serves the new version; a broken module stops at the first', async () => {
    /** This handler says which process answered: "<word> <pid> <request>". */
    const withPid = (word: string) => jsHandler(word).replace('${this.request}', '${process.pid} ${this.request}');
    const dir = project({ 'h.js': withPid('one') });
    const cli = new Cli(['serve', join(dir, 'h.js'), '--port', '0', '--workers', '1', '--processes', '2']);
    const port = await cli.port();
    /** Asks on new connections until both processes answered (connections go round-robin); returns each one's word. */
    const words = async (line: string): Promise<string[]> => {
      const byPid = new Map<string, string>();
      for (let i = 0; i < 8 && byPid.size < 2; i++) {
        const peer = await registry.peer(port);
        peer.write(`${line} ${i}\n`);
        const [word, pid] = (await peer.untilLines(1))[0]!.split(' ');
        byPid.set(pid!, word!);
      }
      return [...byPid.values()];
    };
    expect(await words('x')).toEqual(['one', 'one']);
    writeFileSync(join(dir, 'h.js'), withPid('two'));
    cli.child.kill('SIGHUP');
    await cli.until(() => cli.stderr.includes('reloaded 2 processes'), 'the rollout');
    // Each process's own line comes through its own stderr: the second may arrive after the primary's.
    await cli.until(() => count(cli.stderr, /reloaded h\.js in \d+ ms \(version 2\)/) >= 2, "both processes' reload lines");
    expect(count(cli.stderr, /reloaded h\.js in \d+ ms \(version 2\)/)).toBe(2);
    expect(await words('y')).toEqual(['two', 'two']);
    writeFileSync(join(dir, 'h.js'), `${withPid('three')}\nexport const broken = (;\n`);
    cli.child.kill('SIGHUP');
    await cli.until(() => cli.stderr.includes('reload stopped at process 1 of 2'), 'the stopped rollout');
    expect(cli.stderr).toContain('every process still serves the version before');
    // The process's own failure line comes through its own stderr: it may arrive after the primary's.
    await cli.until(() => count(cli.stderr, /reload failed, still serving version 2/) >= 1, "the process's failure line");
    expect(count(cli.stderr, /reload failed, still serving version 2/)).toBe(1); // only the first process tried
    expect(await words('z')).toEqual(['two', 'two']);
    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
  });
});
