// `sockserv stress` as a user runs it: the compiled CLI (npm run build first) in a child process
// against servers this test starts on 127.0.0.1:0. Checks output formats and exit codes 0 / 1 / 2.

import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../src/cli/usage-error.js';
import { parseStressArgs } from '../stress/cli.js';
import type { StressResult } from '../stress/index.js';

const CLI = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cli(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'stress', ...args], { timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const servers: Server[] = [];
const sockets = new Set<Socket>();

afterAll(async () => {
  for (const socket of sockets) socket.destroy();
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
});

async function listen(onSocket: (socket: Socket) => void): Promise<number> {
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return (server.address() as AddressInfo).port;
}

let echo = 0;
let silent = 0;
let closed = 0;

beforeAll(async () => {
  echo = await listen((socket) => socket.on('data', (chunk) => socket.write(chunk)));
  silent = await listen(() => {});
  const released = createServer();
  await new Promise<void>((resolve) => released.listen(0, '127.0.0.1', resolve));
  closed = (released.address() as AddressInfo).port;
  await new Promise((resolve) => released.close(resolve));
});

describe('sockserv stress', () => {
  test('--json prints the StressResult and exits 0', async () => {
    const run = await cli(`127.0.0.1:${echo}`, '--requests', '300', '--connections', '3', '--pipeline', '4', '--json');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as StressResult;
    expect(result.requests).toBe(300);
    expect(result.bytesSent).toBe(300 * 'ping\n'.length);
    expect(result.errors).toEqual({ refused: 0, reset: 0, timeout: 0, badReply: 0, other: 0 });
    expect(result.latencyMs.p50).toBeLessThanOrEqual(result.latencyMs.p99);
    expect(result.latencyMs.p99).toBeLessThanOrEqual(result.latencyMs.max);
    expect(Array.isArray(result.timeline)).toBe(true);
  });

  test('the human report shows throughput, latency, errors, bytes and the timeline', async () => {
    const run = await cli(`localhost:${echo}`, '-n', '200', '-c', '2', '--framing', 'raw', '--payload', 'hello');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/requests\s+200 in [\d.]+ s = [\d,]+ req\/s/);
    expect(run.stdout).toMatch(/p50 .* p90 .* p99 .* p99\.9 .* max .* ms/);
    expect(run.stdout).toMatch(/errors\s+none/);
    expect(run.stdout).toMatch(/bytes\s+sent 1000 B, received 1000 B/);
    expect(run.stdout).toMatch(/second\s+requests\s+p99 ms\s+errors/);
    // stderr: the header line the report starts with, at once, then a progress line a second (if the run lasts one).
    const [header, ...progress] = run.stderr.replace(/\n$/, '').split('\n');
    expect(header).toBe(run.stdout.split('\n')[0]);
    for (const line of progress) expect(line).toMatch(/^\s+\d+ s {2}(measure|drain) /);
  });

  test('with stdout piped: the header on stderr at once, a progress line every second, the report on stdout at the end', async () => {
    const child = spawn(process.execPath, [CLI, 'stress', `127.0.0.1:${echo}`, '-c', '2', '--duration', '2.5'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    // Each stderr line, and whether the report had begun when it came.
    const stderr: Array<{ line: string; beforeReport: boolean }> = [];
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr
      .setEncoding('utf8')
      .on('data', (text: string) => stderr.push(...text.split('\n').filter(Boolean).map((line) => ({ line, beforeReport: stdout === '' }))));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    expect(stdout).toMatch(/^sockserv stress 127\.0\.0\.1:\d+: 2 connections × pipeline 1, line framing, 4-byte payload, closed loop\n\n {2}requests /);
    const [header, ...progress] = stderr;
    expect(header).toEqual({ line: stdout.split('\n')[0], beforeReport: true });
    // Plain lines (no terminal escapes), one for each second of the run, all before the report.
    expect(progress.length).toBeGreaterThanOrEqual(2);
    for (const { line, beforeReport } of progress) {
      expect(line).toMatch(/^\s+\d+ s {2}(measure|drain) +[\d,]+ req\/s {2}p99 \S+( ms)? {2}in flight \d+ {2}conns \d+ {2}errors 0$/);
      expect(beforeReport).toBe(true);
    }
  });

  test('--payload-file with length framing', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'stress-')), 'payload.bin');
    writeFileSync(file, Buffer.from([0, 1, 2, 10, 255]));
    const run = await cli(`127.0.0.1:${echo}`, '-n', '100', '--payload-file', file, '--framing', 'length', '--json');
    expect(run.code).toBe(0);
    expect((JSON.parse(run.stdout) as StressResult).bytesSent).toBe(100 * 9);
  });

  test('--mix: the JSON result adds each kind; the report shows a row per kind', async () => {
    const [json, human] = await Promise.all([
      cli(`127.0.0.1:${echo}`, '-n', '400', '-c', '2', '-p', '4', '--mix', 'PING:3,HASH x:1', '--json'),
      cli(`127.0.0.1:${echo}`, '-n', '400', '-c', '2', '--mix', 'PING:3,HASH x:1'),
    ]);
    expect(json.code).toBe(0);
    const result = JSON.parse(json.stdout) as StressResult;
    expect(result.kinds!.map((kind) => [kind.name, kind.weight, kind.requests])).toEqual([
      ['PING', 3, 300],
      ['HASH x', 1, 100],
    ]);
    expect(result.bytesSent).toBe(300 * 5 + 100 * 7);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/a mix of 2 kinds/);
    expect(human.stdout).toMatch(/kind\s+weight\s+requests\s+p50\s+p90\s+p99\s+max ms\s+errors/);
    expect(human.stdout).toMatch(/\n {2}PING\s+3\s+300\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+none\n/);
    expect(human.stdout).toMatch(/\n {2}HASH x\s+1\s+100\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+none\n/);
  });

  test('--mix-file with RESP framing', async () => {
    const file = join(mkdtempSync(join(tmpdir(), 'stress-')), 'mix.txt');
    writeFileSync(file, '# weight payload\n2\tGET k\n1 SET k v\n');
    const run = await cli(`127.0.0.1:${echo}`, '-n', '30', '--mix-file', file, '--framing', 'resp', '--json');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as StressResult;
    expect(result.kinds!.map((kind) => [kind.name, kind.requests])).toEqual([
      ['GET k', 20],
      ['SET k v', 10],
    ]);
  });

  test('--new-connection reports connections/s', async () => {
    const [json, human] = await Promise.all([
      cli(`127.0.0.1:${echo}`, '-n', '100', '-c', '4', '--new-connection', '--json'),
      cli(`127.0.0.1:${echo}`, '-n', '100', '-c', '4', '--new-connection'),
    ]);
    expect(json.code).toBe(0);
    const result = JSON.parse(json.stdout) as StressResult;
    expect(result.requests).toBe(100);
    expect(result.connectionsPerSec).toBe(result.rps);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/4 concurrent one-request connections/);
    expect(human.stdout).toMatch(/requests\s+100 in [\d.]+ s = [\d,]+ req\/s = [\d,]+ connections\/s/);
  });

  test('exit 1 and say which threshold was missed', async () => {
    const [p99, rps] = await Promise.all([
      cli(`127.0.0.1:${echo}`, '-n', '100', '--max-p99', '0.000001'),
      cli(`127.0.0.1:${echo}`, '-n', '100', '--min-rps', '1000000000', '--json'),
    ]);
    expect(p99.code).toBe(1);
    expect(p99.stderr).toMatch(/FAIL: p99 latency .* is above --max-p99 0.000001 ms/);
    expect(rps.code).toBe(1);
    expect(rps.stderr).toMatch(/FAIL: throughput .* is below --min-rps 1000000000/);
    expect(() => JSON.parse(rps.stdout)).not.toThrow();
  });

  test('exit 1 on errors: refused connections, timed-out requests', async () => {
    const [refused, timeout] = await Promise.all([
      cli(`127.0.0.1:${closed}`, '-n', '10', '-c', '2', '--json'),
      cli(`127.0.0.1:${silent}`, '-n', '2', '-c', '1', '--timeout', '100', '--json'),
    ]);
    expect(refused.code).toBe(1);
    expect((JSON.parse(refused.stdout) as StressResult).errors.refused).toBe(2);
    expect(refused.stderr).toMatch(/refused 2/);
    expect(timeout.code).toBe(1);
    expect((JSON.parse(timeout.stdout) as StressResult).errors.timeout).toBe(2);
    expect(timeout.stderr).toMatch(/timeout 2/);
  });

  test('exit 2 on bad arguments, without sending anything', async () => {
    const [missing, remote] = await Promise.all([cli(), cli('10.0.0.1:80', '-n', '1')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/exactly one target/);
    expect(remote.code).toBe(2);
    expect(remote.stderr).toMatch(/not a loopback address.*--allow-remote/);
    expect(missing.stdout + remote.stdout).toBe('');
  });

  test('--help documents the raw framing rule and the loopback rule', async () => {
    const run = await cli('--help');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/every payload-length bytes received count\s+as one reply/);
    expect(run.stdout).toMatch(/--allow-remote/);
  });
});

describe('parseStressArgs', () => {
  test.each([
    [['127.0.0.1:80', '--connections', '0'], /--connections/],
    [['127.0.0.1:80', '--pipeline', '100000'], /pipeline/],
    [['127.0.0.1:80', '--requests', '5', '--duration', '1'], /exclude each other/],
    [['127.0.0.1:80', '--payload', 'a', '--payload-file', 'f'], /exclude each other/],
    [['127.0.0.1:80', '--framing', 'http'], /--framing/],
    [['127.0.0.1:80', '--duration', 'soon'], /--duration/],
    [['127.0.0.1:80', '--rate', '0'], /--rate/],
    [['127.0.0.1:80', '--max-p99', '-1'], /max-p99/],
    [['127.0.0.1:80', '--payload', 'a\nb'], /must not contain/],
    [['127.0.0.1:80', '--framing', 'raw', '--payload', ''], /non-empty payload/],
    [['127.0.0.1:80', '--payload-file', '/nonexistent/payload'], /cannot read --payload-file/],
    [['127.0.0.1:80', '--bogus'], /bogus/],
    [['127.0.0.1:80', '--mix', 'a:1', '--payload', 'b'], /exclude each other/],
    [['127.0.0.1:80', '--mix', 'a:1', '--mix-file', 'f'], /exclude each other/],
    [['127.0.0.1:80', '--mix', 'a'], /PAYLOAD:WEIGHT/],
    [['127.0.0.1:80', '--mix', 'a:0'], /weight/],
    [['127.0.0.1:80', '--mix', 'a\nb:1'], /must not contain/],
    [['127.0.0.1:80', '--mix-file', '/nonexistent/mix'], /cannot read --mix-file/],
    [['127.0.0.1:80', '--new-connection', '--pipeline', '2'], /pipeline must be 1/],
    [['127.0.0.1:99999'], /port/],
    [['a:b:c'], /HOST:PORT/],
  ])('%j is a usage error', async (args, message) => {
    const parsing = parseStressArgs(args);
    await expect(parsing).rejects.toThrow(UsageError);
    await expect(parsing).rejects.toThrow(message);
  });

  test('loopback targets pass; others need --allow-remote', async () => {
    for (const target of ['127.0.0.1:80', '127.8.0.1:80', '[::1]:80', 'localhost:80', '80']) {
      await expect(parseStressArgs([target])).resolves.toMatchObject({ options: { port: 80 } });
    }
    await expect(parseStressArgs(['10.0.0.1:80'])).rejects.toThrow(UsageError);
    await expect(parseStressArgs(['[2001:db8::1]:80'])).rejects.toThrow(/--allow-remote/);
    await expect(parseStressArgs(['10.0.0.1:80', '--allow-remote'])).resolves.toMatchObject({
      options: { host: '10.0.0.1', port: 80 },
    });
  });

  test('defaults: 50 connections, pipeline 1, line framing, "ping", 10 s', async () => {
    const { options } = await parseStressArgs(['127.0.0.1:80']);
    expect(options).toMatchObject({ connections: 50, pipeline: 1, framing: 'line' });
    expect(options.payload.toString()).toBe('ping');
    expect(options.requests).toBeUndefined();
    expect(options.durationSec).toBeUndefined();
  });
});
