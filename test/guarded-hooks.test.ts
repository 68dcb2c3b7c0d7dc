// Issue #10: the server's overridable steps are user code, and a bug in one must not stop the
// server. Each hook below throws (once, or for one connection); the connection it ran for is
// closed, the failure is logged with its stack (ERR_HOOK_FAILED), and bystander connections —
// paced, numbered requests checked byte for byte — are all served, exactly.

import type { Socket } from 'node:net';
import {
  type ClientAddress,
  type FramerLimits,
  LineFramer,
  type ServerOptions,
  type SockservError,
  TCPServer,
  ThreadingTCPServer,
} from '../src/index.js';
import { startBystanders } from './helpers/bystanders.js';
import { fixture } from './helpers/client.js';
import { captureLogger, type LogEntry, Registry, waitUntil } from './helpers/net.js';

const registry = new Registry();
afterEach(() => registry.cleanup());

const KINDS = [
  ['ThreadingTCPServer', ThreadingTCPServer],
  ['TCPServer', TCPServer],
] as const;
type ServerClass = (typeof KINDS)[number][1];

/** A line framer with a bug: push() throws on a chunk holding "X", encode() on a reply holding "boom". */
class BuggyFramer extends LineFramer {
  override push(chunk: Buffer): void {
    if (chunk.includes('X')) throw new Error('BuggyFramer.push: cannot handle X');
    super.push(chunk);
  }

  override encode(reply: Uint8Array, out: Uint8Array[]): void {
    if (Buffer.from(reply).includes('boom')) throw new Error('BuggyFramer.encode: cannot handle boom');
    super.encode(reply, out);
  }
}

interface Case {
  hook: string;
  options?: ServerOptions;
  /** Makes the server class with the buggy hook. */
  subclass: (Base: ServerClass) => ServerClass;
  /** What the victim connection sends (undefined: it only connects). */
  victim: string | undefined;
}

function failHookOnce(Base: ServerClass, name: 'handleError' | 'errorReply' | 'verifyRequest' | 'processRequest' | 'shutdownRequest' | 'closeRequest'): ServerClass {
  let failed = false;
  // A subclass whose `name` hook throws the first time it runs, then behaves.
  const Sub = class extends (Base as typeof TCPServer) {};
  const original = (Base.prototype as unknown as Record<string, (...args: unknown[]) => unknown>)[name]!;
  Object.defineProperty(Sub.prototype, name, {
    value: function (this: unknown, ...args: unknown[]) {
      if (!failed) {
        failed = true;
        throw new Error(`${name} has a bug`);
      }
      return original.apply(this, args);
    },
  });
  return Sub as unknown as ServerClass;
}

const CASES: Case[] = [
  { hook: 'handleError', subclass: (B) => failHookOnce(B, 'handleError'), victim: 'throw\n' },
  { hook: 'errorReply', options: { onHandlerError: 'reply' }, subclass: (B) => failHookOnce(B, 'errorReply'), victim: 'throw\n' },
  { hook: 'verifyRequest', subclass: (B) => failHookOnce(B, 'verifyRequest'), victim: undefined },
  { hook: 'processRequest', subclass: (B) => failHookOnce(B, 'processRequest'), victim: undefined },
  { hook: 'shutdownRequest', subclass: (B) => failHookOnce(B, 'shutdownRequest'), victim: 'throw\n' },
  { hook: 'closeRequest', subclass: (B) => failHookOnce(B, 'closeRequest'), victim: 'throw\n' },
  { hook: 'Framer.push', options: { framing: (limits: FramerLimits) => new BuggyFramer(limits) }, subclass: (B) => B, victim: 'X marks the spot\n' },
  { hook: 'Framer.encode', options: { framing: (limits: FramerLimits) => new BuggyFramer(limits) }, subclass: (B) => B, victim: 'boom\n' },
];

function hookFailures(entries: LogEntry[], hook: string): LogEntry[] {
  return entries.filter((e) => e.context.code === 'ERR_HOOK_FAILED' && e.context.hook === hook);
}

describe.each(KINDS)('%s', (_name, Server) => {
  test('a subclass whose handleError throws, and a handler that throws once: the server keeps serving everyone else', async () => {
    class Buggy extends (Server as typeof ThreadingTCPServer) {
      override handleError(_request: Socket | null, _client: ClientAddress, error: SockservError): void {
        throw new Error(`handleError has a bug (while handling ${error.code})`);
      }
    }
    const { logger, entries } = captureLogger();
    const server = registry.server(new Buggy({ host: '127.0.0.1', port: 0 }, fixture('faulty'), { workers: 2, logger }));
    const { port } = await server.listen();
    const others = await startBystanders(port, registry, { count: 10, requests: 50 });
    const victim = await registry.peer(port);
    victim.write('ok before\nthrow once\nnever answered\n');
    const received = await victim.untilClosed();
    expect(received.toString()).toBe('ok ok before\n');
    expect(await others.done).toBe(500);
    const failures = hookFailures(entries, 'handleError');
    expect(failures).toHaveLength(1);
    expect(String((failures[0]!.context.err as Error).stack)).toContain('handleError has a bug');
    // And it still accepts and serves new connections.
    const after = await registry.peer(port);
    after.write('still here\n');
    expect(await after.untilLines(1)).toEqual(['ok still here']);
  });

  test.each(CASES)('$hook throws: only its connection closes, the failure is logged with its stack, bystanders are all served', async ({ hook, options, subclass, victim }) => {
    const { logger, entries } = captureLogger();
    const Buggy = subclass(Server) as typeof ThreadingTCPServer;
    const server = registry.server(new Buggy({ host: '127.0.0.1', port: 0 }, fixture('faulty'), { workers: 2, logger, ...options }));
    const { port } = await server.listen();
    const first = await registry.peer(port); // the first connection meets the bug
    if (victim !== undefined) first.write(victim);
    await first.untilClosed();
    const others = await startBystanders(port, registry, { count: 10, requests: 50 });
    expect(await others.done).toBe(500);
    await waitUntil(() => hookFailures(entries, hook).length > 0, `the ${hook} failure to be logged`);
    const [failure] = hookFailures(entries, hook);
    expect(failure!.level).toBe('error');
    expect((failure!.context.err as Error).stack).toMatch(/has a bug|cannot handle/);
  });

  test('serviceActions and an onClose callback that throw are logged; serveForever goes on and close() completes', async () => {
    const { logger, entries } = captureLogger();
    let calls = 0;
    class Buggy extends (Server as typeof ThreadingTCPServer) {
      override serviceActions(): void {
        calls++;
        throw new Error('serviceActions has a bug');
      }
    }
    const server = new Buggy({ host: '127.0.0.1', port: 0 }, fixture('faulty'), { workers: 2, logger });
    server.onClose(() => {
      throw new Error('onClose callback has a bug');
    });
    const serving = server.serveForever(0.01);
    await waitUntil(() => calls >= 3, 'serviceActions to run (and throw) three times');
    const { port } = server.address;
    const peer = await registry.peer(port);
    peer.write('fine\n');
    expect(await peer.untilLines(1)).toEqual(['ok fine']);
    peer.socket.end();
    await server.close();
    await serving;
    expect(hookFailures(entries, 'serviceActions')).toHaveLength(1); // one line per second, not one per call
    expect(hookFailures(entries, 'onClose')).toHaveLength(1);
  });
});

test('a flood of failed requests logs the first of each second with its stack, then one line with how many followed', async () => {
  const { logger, entries } = captureLogger();
  const server = registry.server(new ThreadingTCPServer({ host: '127.0.0.1', port: 0 }, fixture('faulty'), { workers: 2, logger, onHandlerError: 'reply' }));
  const { port } = await server.listen();
  const peer = await registry.peer(port);
  const started = Date.now();
  peer.write('throw\n'.repeat(200));
  await peer.untilLines(200);
  expect(peer.lines).toEqual(Array.from({ length: 200 }, () => 'ERROR ERR_HANDLER_FAILED'));
  const failed = () => entries.filter((e) => e.message?.startsWith('request failed'));
  const firsts = () => failed().filter((e) => e.context.err !== undefined);
  const counted = () => firsts().length + failed().reduce((n, e) => n + ((e.context.more as number | undefined) ?? 0), 0);
  expect(String((firsts()[0]!.context.err as Error).stack)).toContain('thrown by throw');
  await waitUntil(() => counted() === 200, 'the lines to account for all 200 failures');
  // One full line (with its stack) per one-second window at most, not one per failure.
  expect(firsts().length).toBeLessThanOrEqual(Math.ceil((Date.now() - started) / 1000) + 1);
});

test('refused connections that reset while the server ends them do not raise an unhandled socket error', async () => {
  let refuse = true;
  class Picky extends ThreadingTCPServer {
    override verifyRequest(_request: Socket, _client: ClientAddress): boolean {
      return !refuse;
    }
  }
  const server = registry.server(new Picky({ host: '127.0.0.1', port: 0 }, fixture('faulty'), { workers: 2 }));
  const { port } = await server.listen();
  const refused = await Promise.all(Array.from({ length: 20 }, () => registry.peer(port)));
  for (const peer of refused) {
    peer.write(Buffer.alloc(256 * 1024, 'r')); // unread input: the server's end meets a reset
    peer.socket.resetAndDestroy();
  }
  await waitUntil(() => server.stats().connectionsRefused === 20, 'all 20 to be refused');
  await waitUntil(() => server.stats().connections === 0, 'the refused sockets to be released');
  refuse = false;
  const peer = await registry.peer(port);
  peer.write('still serving\n');
  expect(await peer.untilLines(1)).toEqual(['ok still serving']);
});
