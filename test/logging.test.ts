// The CLI's logs (src/cli/log.ts): pino JSON lines on stderr at --log-level, one per event, while
// stdout stays exactly the one `listening on` line; the terminal formatter's readable lines.

import { formatRecord } from '../src/cli/log.js';
import { Cli, killAll } from './helpers/cli-process.js';
import { fixture } from './helpers/client.js';
import { Registry, WAIT_MS, waitUntil } from './helpers/net.js';


const registry = new Registry();
afterEach(async () => {
  await registry.cleanup();
  killAll();
});

interface LogLine {
  level: number;
  time: number;
  msg: string;
  [field: string]: unknown;
}

class Serve extends Cli {
  constructor(args: string[]) {
    super(['serve', ...args]);
  }

  /** Every stderr line, each of which must be a JSON log record. */
  get logs(): LogLine[] {
    return this.stderr
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => {
        try {
          return JSON.parse(line) as LogLine;
        } catch {
          throw new Error(`stderr line is not JSON: ${JSON.stringify(line)}`);
        }
      });
  }
}

describe('sockserv serve logging', () => {
  test('--log-level debug: JSON lines with level, time and msg on stderr, one per event; stdout is exactly the listening line', async () => {
    const cli = new Serve([fixture('echo'), '--port', '0', '--workers', '1', '--log-level', 'debug']);
    const port = await cli.port();

    // Traffic logs nothing: no per-request or per-byte lines.
    const peer = await registry.peer(port);
    peer.write('a\nb\nc\n');
    expect(await peer.untilLines(3)).toEqual(['a', 'b', 'c']);
    // A connection reset by its client is a connection error: logged once, at debug.
    peer.socket.resetAndDestroy();
    await waitUntil(() => cli.stderr.includes('connection error'), 'the connection error at debug', WAIT_MS);

    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
    expect(cli.stdout).toBe(`listening on tcp://127.0.0.1:${port}\n`);

    const logs = cli.logs;
    for (const line of logs) {
      expect(typeof line.level).toBe('number');
      expect(typeof line.time).toBe('number');
      expect(typeof line.msg).toBe('string');
      expect(line.pid).toBe(cli.child.pid);
    }
    const messages = logs.map((l) => l.msg);
    expect(messages).toEqual(['serving', 'connection error', 'shutting down: finishing the requests in flight', 'stopped']);
    const [serving, connectionError, shuttingDown] = logs;
    expect(serving!.level).toBe(30); // info
    expect(serving).toMatchObject({ address: `tcp://127.0.0.1:${port}`, workers: 1, framing: 'line' });
    expect(connectionError!.level).toBe(20); // debug
    expect(connectionError!.client).toMatch(/^127\.0\.0\.1:\d+$/);
    expect((connectionError!.err as { code?: string }).code).toBe('ECONNRESET');
    expect(shuttingDown!.signal).toBe('SIGTERM');
  });

  test('--log-level warn keeps info lines out; a handler error is still logged, as an error with its stack', async () => {
    const cli = new Serve([fixture('faulty'), '--port', '0', '--inline', '--log-level', 'warn']);
    const port = await cli.port();
    const peer = await registry.peer(port);
    peer.write('throw it\n');
    await peer.untilClosed(); // onHandlerError 'close': the connection ends
    await waitUntil(() => cli.stderr.includes('request failed'), 'the request failed line', WAIT_MS);
    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
    expect(cli.stdout).toBe(`listening on tcp://127.0.0.1:${port}\n`);
    const logs = cli.logs;
    expect(logs.map((l) => l.msg)).toEqual(['request failed']);
    expect(logs[0]!.level).toBe(50);
    expect(logs[0]!.code).toBe('ERR_HANDLER_FAILED');
    expect(String((logs[0]!.err as { stack?: string }).stack)).toContain('thrown by throw it');
  });

  test('the default level is info: debug lines are left out', async () => {
    const cli = new Serve([fixture('echo'), '--port', '0', '--inline']);
    const port = await cli.port();
    const peer = await registry.peer(port);
    peer.write('x\n');
    await peer.untilLines(1);
    peer.socket.resetAndDestroy();
    // Wait for the server to see the reset before stopping, so a debug line would have been written by now.
    const probe = await registry.peer(port);
    probe.write('y\n');
    await probe.untilLines(1);
    probe.socket.end();
    await probe.untilClosed();
    cli.child.kill('SIGTERM');
    expect(await cli.exit()).toBe(0);
    expect(cli.logs.map((l) => l.level)).toEqual([30, 30, 30]);
    expect(cli.stderr).not.toContain('connection error');
  });

  test('an unknown --log-level exits 2 with a usage message', async () => {
    const cli = new Serve([fixture('echo'), '--port', '0', '--log-level', 'loud']);
    expect(await cli.exit()).toBe(2);
    expect(cli.stderr).toMatch(/^sockserv serve: --log-level must be one of trace, debug, info, warn, error, fatal, silent \(got "loud"\)/);
    expect(cli.stdout).toBe('');
  });
});

describe('the terminal formatter', () => {
  test('one readable line per record: time, level, message, then the fields', () => {
    const time = Date.UTC(2026, 0, 2, 3, 4, 5, 678);
    expect(formatRecord({ level: 30, time, pid: 1, hostname: 'h', msg: 'serving', address: 'tcp://127.0.0.1:8001', workers: 2 })).toBe(
      '03:04:05.678 INFO  serving address=tcp://127.0.0.1:8001 workers=2\n',
    );
    expect(formatRecord({ level: 30, time, msg: 'metrics on http://127.0.0.1:9464/metrics', url: 'http://127.0.0.1:9464/metrics' })).toBe(
      '03:04:05.678 INFO  metrics on http://127.0.0.1:9464/metrics\n', // a field already in the message is not repeated
    );
    expect(formatRecord({ level: 40, time, msg: 'closed idle connections', code: 'ERR_IDLE_TIMEOUT', connections: 3 })).toBe(
      '03:04:05.678 WARN  closed idle connections code=ERR_IDLE_TIMEOUT connections=3\n',
    );
  });

  test('an error record ends with its stack, indented', () => {
    const line = formatRecord({ level: 50, time: 0, msg: 'request failed', err: { type: 'Error', message: 'boom', stack: 'Error: boom\n    at x' } });
    expect(line).toBe('00:00:00.000 ERROR request failed\n    Error: boom\n        at x\n');
  });
});
