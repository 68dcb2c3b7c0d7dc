// Owns the catalogue of benchmarked servers: for each, the exact command that starts it (from
// the repo root) and how many listeners it announces. Scenarios pick servers from here.

import { dirname, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerSpec } from './children.js';
import type { WorkName } from './work.js';

/** The repo root: this file runs as dist/bench/servers.js. */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SERVERS_DIR = relative(REPO_ROOT, resolve(dirname(fileURLToPath(import.meta.url)), 'servers'));

function nodeServer(name: string, script: string, args: string[], listeners = 1): ServerSpec {
  return { name, command: process.execPath, args: [`${SERVERS_DIR}/${script}`, ...args], listeners, cwd: REPO_ROOT };
}

/** sockserv ThreadingTCPServer: handlers on a worker_threads pool of `workers` threads. */
export function sockservPool(work: WorkName, workers: number): ServerSpec {
  return nodeServer('sockserv pool', 'sockserv.js', ['--listen', `pool:${work}`, '--workers', String(workers)]);
}

/** sockserv ThreadingTCPServer with the opt-in inline lane: requests measured under 20 µs run on the main thread. */
export function sockservPoolInlineLane(work: WorkName, workers: number): ServerSpec {
  return nodeServer('sockserv pool + inline lane', 'sockserv.js', [
    '--listen',
    `pool:${work}`,
    '--workers',
    String(workers),
    '--inline-below-micros',
    '20',
  ]);
}

/** sockserv TCPServer: handlers inline on the main thread. */
export function sockservInline(work: WorkName): ServerSpec {
  return nodeServer('sockserv inline', 'sockserv.js', ['--listen', `inline:${work}`]);
}

/** Responsiveness: PBKDF2 on a ThreadingTCPServer and PING on an inline TCPServer, one process. */
export function sockservTwoListeners(workers: number, name = 'sockserv pool + inline'): ServerSpec {
  return nodeServer(
    name,
    'sockserv.js',
    ['--listen', 'pool:pbkdf2', '--listen', 'inline:ping', '--workers', String(workers)],
    2,
  );
}

/** The hand-written single-threaded node:net server; one listener per work, one event loop. */
export function plainNet(...works: WorkName[]): ServerSpec {
  return nodeServer(
    works.length > 1 ? 'node:net single-threaded' : 'node:net',
    'plain-net.js',
    works.flatMap((work) => ['--work', work]),
    works.length,
  );
}

export function nodeCluster(work: WorkName, workers: number): ServerSpec {
  return nodeServer('node:cluster', 'cluster.js', ['--work', work, '--workers', String(workers)]);
}

export function piscinaPerRequest(work: WorkName, workers: number): ServerSpec {
  return nodeServer('piscina task per request', 'piscina-per-request.js', ['--work', work, '--workers', String(workers)]);
}

/** sockserv sessions: the StreamRequestHandler line echo, on the pool (ThreadingTCPServer) or inline (TCPServer). */
export function sockservSessions(mode: 'pool' | 'inline', workers: number): ServerSpec {
  return nodeServer(`sockserv sessions (${mode})`, 'sockserv.js', ['--listen', `${mode}:echo-session`, '--workers', String(workers)]);
}

/** The best hand-written node:net line echo: Buffers only, one write per data event. */
export function netEcho(): ServerSpec {
  return nodeServer('node:net (Buffers)', 'net-echo.js', []);
}

/** sockserv's broadcast handler (rooms), on the pool (ThreadingTCPServer) or inline (TCPServer). */
export function sockservBroadcast(mode: 'pool' | 'inline', workers: number): ServerSpec {
  return nodeServer(`sockserv ${mode}`, 'sockserv.js', ['--listen', `${mode}:broadcast`, '--workers', String(workers)]);
}

/**
 * The broadcast handler served by the CLI in two processes sharing the room through Redis
 * (`--processes 2 --pubsub`), one worker each.
 */
export function sockservBroadcastProcesses(redisUrl: string): ServerSpec {
  return {
    name: 'sockserv --processes 2 + Redis',
    command: process.execPath,
    args: ['dist/src/cli/main.js', 'serve', 'dist/bench/handlers/broadcast.js', '--port', '0', '--processes', '2', '--workers', '1', '--pubsub', redisUrl, '--log-level', 'warn'],
    listeners: 1,
    cwd: REPO_ROOT,
  };
}

/** The hand-written node:net chat server (Buffers only): the broadcast scenario's baseline. */
export function netChat(): ServerSpec {
  return nodeServer('node:net chat (Buffers)', 'net-chat.js', []);
}

/** A ws WebSocket broadcast server, as the ws README broadcasts. */
export function wsBroadcast(): ServerSpec {
  return nodeServer('ws broadcast', 'ws-broadcast.js', []);
}

/** The same server under another display name (a second row of one server in a group). */
export function renamed(spec: ServerSpec, name: string): ServerSpec {
  return { ...spec, name };
}

export function pythonThreading(work: WorkName): ServerSpec {
  return { name: 'CPython ThreadingTCPServer', command: 'python3', args: ['bench/baselines/python_threading.py', work], listeners: 1, cwd: REPO_ROOT };
}

/** The command as a reader would type it from the repo root. */
export function commandLine(spec: ServerSpec): string {
  const command = spec.command === process.execPath ? 'node' : spec.command;
  return [command, ...spec.args].join(' ');
}
