// Owns `sockserv serve --processes N`: N processes behind one port, with node:cluster. The
// primary runs no server; it forks N workers, each of which is the ordinary `serve` — its own
// main thread, its own worker pool — and supervises them:
//
//   start     every worker listens on the same address. The primary's cluster module holds the
//             one listening socket and hands connections out round-robin (SCHED_RR). `--port 0`
//             works: workers asking for the same host and port 0 share one socket, so one port
//             is chosen (a restart joins it the same way; only if no worker is left, and the
//             socket with it, does the next one ask for that port by number).
//   ready     when all N have reported listening, the primary prints `listening on …` (once).
//   crash     a worker that exits on its own is forked again after a backoff (doubling from
//             100 ms up to 30 s; reset once a worker has served for 10 s), with a log line.
//             A worker that fails before the first ready line stops the whole start (exit 1).
//   stop      SIGINT/SIGTERM to the primary: every worker is told to shut down gracefully (its
//             requests in flight are answered), then the primary exits — 0 if every worker
//             stopped cleanly. A worker still alive shutdownTimeout + 5 s later is killed (exit 1).
//   reload    SIGHUP to the primary: the workers reload the handler one at a time, each once the
//             one before serves the new version; a failure stops there (src/cli/reload.ts). A
//             SIGHUP during a rollout makes one more after it.
//
// Messages between them are plain objects over the cluster IPC channel (`sockserv:*` types).

import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { Logger } from '../logger.js';
import type { BaseServer } from '../server/base-server.js';
import { reloadWhenAsked, rollingReload } from './reload.js';

/** Worker → primary: the server listens at `address` (as printed), on `port`. */
interface ListeningMessage {
  type: 'sockserv:listening';
  address: string;
  port: number;
}

/** Primary → worker: shut down gracefully and exit. */
interface ShutdownMessage {
  type: 'sockserv:shutdown';
}

const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 30_000;
/** A worker that served this long before dying starts the backoff over: it was not a crash loop. */
const STABLE_AFTER_MS = 10_000;
/** How much longer than shutdownTimeout the primary waits for a worker before killing it. */
const STOP_GRACE_MS = 5_000;

/** Pool threads per process when --workers is not given: the cores shared out, at least one each. */
export function threadsPerProcess(processes: number): number {
  return Math.max(1, Math.floor(availableParallelism() / processes));
}

/** `serve --processes N`: the supervisor in the primary, the server in each worker. */
export function serveProcesses(server: BaseServer, processes: number, describe: (server: BaseServer) => string): Promise<number> {
  return cluster.isPrimary ? new Supervisor(server, processes).run() : serveInWorker(server, describe);
}

// ---- a worker --------------------------------------------------------------------------------

async function serveInWorker(server: BaseServer, describe: (server: BaseServer) => string): Promise<number> {
  const stop = (reason: string) => {
    const { connections, requestsInFlight } = server.stats();
    server.logger.info({ reason, connections, requestsInFlight }, 'shutting down: finishing the requests in flight');
    void server.close();
  };
  const onMessage = (message: unknown) => {
    if ((message as ShutdownMessage | null)?.type === 'sockserv:shutdown') stop('asked by the primary');
  };
  process.on('message', onMessage);
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  const stopReloads = reloadWhenAsked(server);
  try {
    const { port } = await server.listen();
    const address = describe(server);
    server.logger.info({ address }, `worker listening on ${address}`);
    send({ type: 'sockserv:listening', address, port } satisfies ListeningMessage);
    await server.serveForever();
    await server.close();
    server.logger.info('worker stopped');
    return 0;
  } finally {
    // Leave the cluster on purpose (plain process.disconnect() would make cluster exit(0) at
    // once): with the IPC channel gone nothing keeps the process up, and it exits with main's
    // exit code — 1 if listen() failed.
    process.off('message', onMessage);
    stopReloads();
    cluster.worker?.disconnect();
  }
}

function send(message: ListeningMessage): void {
  process.send?.(message);
}

// ---- the primary -----------------------------------------------------------------------------

/** One of the N places a worker runs in; a restart forks a new worker into the same slot. */
interface Slot {
  readonly index: number;
  worker: Worker | undefined;
  /** The worker reported listening (and has not exited since). */
  listening: boolean;
  /** When it reported listening (Date.now()). */
  listeningSince: number;
  /** Exits in a row without a stable run: the backoff exponent. */
  failures: number;
  restartTimer: NodeJS.Timeout | undefined;
}

class Supervisor {
  readonly #processes: number;
  readonly #logger: Logger;
  readonly #shutdownTimeout: number;
  readonly #slots: Slot[] = [];
  /**
   * The `serve` arguments of the workers running now. They must all ask for the same address:
   * cluster shares one listening socket per distinct (host, port) asked for, and a second one on
   * the same port would fail with EADDRINUSE.
   */
  #workerArgs = process.argv.slice(2);
  /** `#workerArgs` plus `--port P`, once the port is known (parseArgs: the last --port wins). */
  #pinnedArgs: string[] | undefined;
  /** The address every worker must report: the first one reported. */
  #address: string | undefined;
  #announced = false;
  #stopping = false;
  /** A worker exited badly while stopping, or the start failed: exit 1. */
  #failed = false;
  #killTimer: NodeJS.Timeout | undefined;
  /** A rollout of SIGHUP runs; `#reloadAgain`: another SIGHUP came meanwhile. */
  #reloading = false;
  #reloadAgain = false;
  #done!: (code: number) => void;

  constructor(server: BaseServer, processes: number) {
    this.#processes = processes;
    this.#logger = server.logger;
    this.#shutdownTimeout = server.options.shutdownTimeout;
  }

  run(): Promise<number> {
    const finished = new Promise<number>((resolve) => (this.#done = resolve));
    cluster.schedulingPolicy = cluster.SCHED_RR; // before the first fork: round-robin on every platform
    process.once('SIGINT', () => this.#stop('SIGINT'));
    process.once('SIGTERM', () => this.#stop('SIGTERM'));
    process.on('SIGHUP', () => this.#reload());
    for (let index = 0; index < this.#processes; index++) {
      const slot: Slot = { index, worker: undefined, listening: false, listeningSince: 0, failures: 0, restartTimer: undefined };
      this.#slots.push(slot);
      this.#fork(slot);
    }
    return finished;
  }

  #fork(slot: Slot): void {
    slot.restartTimer = undefined;
    if (this.#pinnedArgs !== undefined && this.#slots.every((s) => s.worker === undefined)) {
      // No worker holds the shared socket any more, so it is closed: with --port 0 a new one
      // would get a new port. Ask for the one announced, by number.
      this.#workerArgs = this.#pinnedArgs;
    }
    cluster.setupPrimary({ args: this.#workerArgs });
    const worker = cluster.fork();
    slot.worker = worker;
    worker.on('message', (message: unknown) => {
      if ((message as ListeningMessage | null)?.type === 'sockserv:listening') this.#onListening(slot, worker, message as ListeningMessage);
    });
    worker.on('exit', (code, signal) => this.#onExit(slot, worker, code, signal));
  }

  #onListening(slot: Slot, worker: Worker, message: ListeningMessage): void {
    if (this.#address === undefined) {
      this.#address = message.address;
      this.#pinnedArgs = [...this.#workerArgs, '--port', String(message.port)];
    } else if (message.address !== this.#address) {
      this.#logger.error({ worker: worker.process.pid, address: message.address, expected: this.#address }, 'a worker listens on another address: replacing it');
      worker.kill();
      return;
    }
    slot.listening = true;
    slot.listeningSince = Date.now();
    if (this.#stopping) {
      this.#tell(worker);
      return;
    }
    if (!this.#announced && this.#slots.every((s) => s.listening)) {
      this.#announced = true;
      process.stdout.write(`listening on ${this.#address}\n`);
      this.#logger.info({ address: this.#address, processes: this.#processes }, `listening on ${this.#address} with ${this.#processes} process${this.#processes === 1 ? '' : 'es'}`);
    }
  }

  #onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    const wasListening = slot.listening;
    slot.worker = undefined;
    slot.listening = false;
    const pid = worker.process.pid;
    const how = signal !== null ? `killed by ${signal}` : `exit code ${code}`;
    if (this.#stopping) {
      if (wasListening && (code !== 0 || signal !== null)) {
        this.#failed = true;
        this.#logger.error({ worker: pid, code, signal }, `worker ${pid} did not stop cleanly (${how})`);
      }
      this.#finishIfAllExited();
      return;
    }
    if (!this.#announced && !wasListening) {
      // The handler cannot load, the port is taken…: the worker said why on stderr. Restarting
      // would only repeat it.
      this.#logger.error({ worker: pid, code, signal }, `worker ${pid} failed to start (${how}): stopping`);
      this.#failed = true;
      this.#stop('a worker failed to start');
      return;
    }
    if (wasListening && Date.now() - slot.listeningSince >= STABLE_AFTER_MS) slot.failures = 0;
    const delay = Math.min(BACKOFF_FIRST_MS * 2 ** slot.failures, BACKOFF_MAX_MS);
    slot.failures++;
    this.#logger.warn({ worker: pid, code, signal, restartInMs: delay, slot: slot.index }, `worker ${pid} exited (${how}); restarting it in ${delay} ms`);
    slot.restartTimer = setTimeout(() => this.#fork(slot), delay);
  }

  #stop(reason: string): void {
    if (this.#stopping) return;
    this.#stopping = true;
    const serving = this.#slots.filter((s) => s.worker !== undefined).length;
    this.#logger.info({ reason, workers: serving }, 'shutting down: every worker finishes its requests in flight');
    for (const slot of this.#slots) {
      clearTimeout(slot.restartTimer);
      slot.restartTimer = undefined;
      // A worker still starting is told once it reports listening (before that it has no one to tell).
      if (slot.worker !== undefined && slot.listening) this.#tell(slot.worker);
    }
    this.#killTimer = setTimeout(() => {
      for (const slot of this.#slots) {
        if (slot.worker === undefined) continue;
        this.#logger.error({ worker: slot.worker.process.pid }, `worker ${slot.worker.process.pid} still running ${this.#shutdownTimeout + STOP_GRACE_MS} ms after shutdown: killing it`);
        this.#failed = true;
        slot.worker.process.kill('SIGKILL');
      }
    }, this.#shutdownTimeout + STOP_GRACE_MS);
    this.#finishIfAllExited();
  }

  /** SIGHUP: the listening workers reload one at a time, in slot order (src/cli/reload.ts). */
  #reload(): void {
    if (this.#stopping) return;
    if (this.#reloading) {
      this.#reloadAgain = true;
      return;
    }
    this.#reloading = true;
    const workers = this.#slots.filter((s) => s.listening && s.worker !== undefined).map((s) => s.worker!);
    void rollingReload(workers, this.#logger).finally(() => {
      this.#reloading = false;
      if (this.#reloadAgain) {
        this.#reloadAgain = false;
        this.#reload();
      }
    });
  }

  #tell(worker: Worker): void {
    if (worker.isConnected()) worker.send({ type: 'sockserv:shutdown' } satisfies ShutdownMessage);
  }

  #finishIfAllExited(): void {
    if (!this.#stopping || this.#slots.some((s) => s.worker !== undefined)) return;
    clearTimeout(this.#killTimer);
    this.#logger.info('stopped');
    this.#done(this.#failed ? 1 : 0);
  }
}
