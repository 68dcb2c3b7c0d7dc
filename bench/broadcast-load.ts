// Owns the broadcast scenario's client: N connections join one room ("join", answered "joined"),
// then each sends M lines `CLIENT SEQ SENT-µs`, keeping at most W of its own unconfirmed — its own
// line coming back is its receipt, so the load runs at the server's pace (closed loop). Every
// connection checks that it gets every sender's lines once and in order; a delivery's latency is
// its receipt time minus its send time (one clock: this process). Plain TCP lines, or WebSocket
// messages (the ws server). A warm-up round of the same size runs first and is not counted.

import { type Socket, connect } from 'node:net';
import { WebSocket } from 'ws';
import { round } from './results.js';

export interface BroadcastLoad {
  connections: number;
  /** Lines each connection sends in the measured round (and in the warm-up round before it). */
  messages: number;
  /** Lines of its own a connection may have unconfirmed. */
  window: number;
  transport: 'tcp' | 'ws';
  timeoutMs: number;
}

export interface BroadcastResult {
  /** Lines delivered (N × N × M: every member gets every line, its own included). */
  deliveries: number;
  durationSec: number;
  /** Deliveries per second: fan-out messages/s. */
  rate: number;
  latencyMs: { min: number; mean: number; p50: number; p90: number; p99: number; p999: number; max: number };
  /** Lines out of order (or duplicated), and lines that never came. */
  errors: { outOfOrder: number; missing: number };
}

interface Round {
  messages: number;
  started: number;
  /** Receipt time of the last delivery. */
  last: number;
  latencies: Float64Array;
  count: number;
  outOfOrder: number;
  done: number;
  finish: () => void;
}

class Client {
  readonly index: number;
  /** Per sender: the next sequence number expected. */
  next: Int32Array;
  received = 0;
  sent = 0;
  confirmed = 0;
  #tail = '';
  #joined: (() => void) | null = null;
  #round: Round | null = null;
  readonly #send: (line: string) => void;
  readonly #count: number;

  constructor(index: number, count: number, send: (line: string) => void) {
    this.index = index;
    this.#count = count;
    this.#send = send;
    this.next = new Int32Array(count);
  }

  joined(): Promise<void> {
    return new Promise((resolve) => {
      this.#joined = resolve;
      this.#send('join');
    });
  }

  start(round: Round): void {
    this.#round = round;
    this.next = new Int32Array(this.#count);
    this.received = this.sent = this.confirmed = 0;
    const first = Math.min(round.messages, WINDOW.value);
    for (let i = 0; i < first; i++) this.#sendNext();
  }

  /** Text as received (TCP: a chunk of lines; ws: one message, no newline). */
  receive(text: string, framed: boolean): void {
    if (!framed) return this.#line(text);
    const all = this.#tail + text;
    let start = 0;
    for (let end = all.indexOf('\n'); end !== -1; end = all.indexOf('\n', start)) {
      this.#line(all.slice(start, end));
      start = end + 1;
    }
    this.#tail = all.slice(start);
  }

  #line(line: string): void {
    if (this.#joined !== null) {
      if (line === 'joined') {
        const resolve = this.#joined;
        this.#joined = null;
        resolve();
      }
      return;
    }
    const round = this.#round;
    if (round === null) return;
    const now = performance.now();
    const a = line.indexOf(' ');
    const b = line.indexOf(' ', a + 1);
    const sender = Number(line.slice(0, a));
    const seq = Number(line.slice(a + 1, b));
    const sentAt = Number(line.slice(b + 1)) / 1000;
    if (this.next[sender] !== seq) round.outOfOrder++;
    this.next[sender] = seq + 1;
    round.latencies[round.count++] = now - sentAt;
    round.last = now;
    if (++this.received === this.#count * round.messages && ++round.done === this.#count) round.finish();
    if (sender === this.index && ++this.confirmed && this.sent < round.messages) this.#sendNext();
  }

  #sendNext(): void {
    this.#send(`${this.index} ${this.sent++} ${Math.round(performance.now() * 1000)}`);
  }
}

/** The window, shared by the clients of one run (set by runBroadcast). */
const WINDOW = { value: 1 };

export async function runBroadcast(port: number, load: BroadcastLoad, signal: AbortSignal): Promise<BroadcastResult> {
  WINDOW.value = load.window;
  const closers: Array<() => void> = [];
  try {
    const clients = await Promise.all(Array.from({ length: load.connections }, (_, i) => open(port, i, load, closers)));
    await Promise.all(clients.map((client) => client.joined()));
    await runRound(clients, load.messages, load.timeoutMs, signal); // warm-up: the JIT, the sockets' buffers
    const measured = await runRound(clients, load.messages, load.timeoutMs, signal);
    const durationSec = (measured.last - measured.started) / 1000;
    const latencies = measured.latencies.subarray(0, measured.count).sort();
    const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
    let sum = 0;
    for (const value of latencies) sum += value;
    const expected = load.connections * load.connections * load.messages;
    return {
      deliveries: measured.count,
      durationSec: round(durationSec, 3),
      rate: round(measured.count / durationSec, 1),
      latencyMs: {
        min: round(at(0), 3),
        mean: round(sum / Math.max(1, latencies.length), 3),
        p50: round(at(0.5), 3),
        p90: round(at(0.9), 3),
        p99: round(at(0.99), 3),
        p999: round(at(0.999), 3),
        max: round(latencies[latencies.length - 1] ?? 0, 3),
      },
      errors: { outOfOrder: measured.outOfOrder, missing: expected - measured.count },
    };
  } finally {
    for (const close of closers) close();
  }
}

function runRound(clients: Client[], messages: number, timeoutMs: number, signal: AbortSignal): Promise<Round> {
  return new Promise((resolve, reject) => {
    const n = clients.length;
    let timer: NodeJS.Timeout | undefined;
    const onAbort = () => fail(signal.reason as Error);
    const fail = (error: Error) => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      reject(error);
    };
    const round: Round = {
      messages,
      started: performance.now(),
      last: 0,
      latencies: new Float64Array(n * n * messages),
      count: 0,
      outOfOrder: 0,
      done: 0,
      finish: () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        resolve(round);
      },
    };
    timer = setTimeout(() => fail(new Error(`broadcast round incomplete after ${timeoutMs} ms: ${round.count} of ${n * n * messages} delivered`)), timeoutMs);
    signal.addEventListener('abort', onAbort);
    for (const client of clients) client.start(round);
  });
}

function open(port: number, index: number, load: BroadcastLoad, closers: Array<() => void>): Promise<Client> {
  return new Promise((resolve, reject) => {
    if (load.transport === 'ws') {
      const ws = new WebSocket(`ws://127.0.0.1:${port}`, { perMessageDeflate: false });
      closers.push(() => ws.terminate());
      const client = new Client(index, load.connections, (line) => ws.send(line));
      ws.on('message', (data: Buffer) => client.receive(data.toString('latin1'), false));
      ws.once('open', () => resolve(client));
      ws.once('error', reject);
      return;
    }
    const socket: Socket = connect({ port, host: '127.0.0.1', noDelay: true });
    closers.push(() => socket.destroy());
    const client = new Client(index, load.connections, (line) => socket.write(`${line}\n`, 'latin1'));
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => client.receive(text, true));
    socket.once('connect', () => resolve(client));
    socket.once('error', reject);
  });
}
