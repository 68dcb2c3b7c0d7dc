// Shared by the soak runners (npm run soak:c10k, npm run soak:leaks): the open-files limit check,
// and a sockserv server in a child process (server.mjs) that answers questions about itself —
// its descriptors, memory and stats — over the IPC channel. The server runs in its own process so
// each side has its own open-files limit and the numbers are the server's alone.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The open-files limits of this process: { soft, hard } (Infinity for "unlimited"). */
export function fileLimits() {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const [soft, hard] = line.split(/\s{2,}/).slice(1, 3).map((v) => (v === 'unlimited' ? Infinity : Number(v)));
  return { soft, hard };
}

/**
 * Makes sure this process may open `needed` files. Node cannot call setrlimit, so when the soft
 * limit is too low but the hard limit allows, the script runs itself again through
 * `sh -c 'ulimit -n N; exec node …'` (once) and returns false — this process then only waits for
 * that one and exits with its code. When the hard limit is too low it explains and exits 2.
 * Returns true when this process may go on.
 */
export function ensureFileLimit(needed, script) {
  const { soft, hard } = fileLimits();
  if (soft >= needed) return true;
  if (hard >= needed && process.env.SOCKSERV_SOAK_REEXEC !== '1') {
    const target = Math.min(hard, Math.max(needed, 20000));
    console.log(`open-files soft limit is ${soft}; re-running with ulimit -n ${target}`);
    const child = spawn('sh', ['-c', `ulimit -n ${target} && exec "$0" "$@"`, process.execPath, script, ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, SOCKSERV_SOAK_REEXEC: '1' },
    });
    child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
    return false;
  }
  console.error(
    `sockserv soak: this run needs ${needed} open files, but the limit is ${soft} (hard ${hard}).\n` +
      `Raise it first, e.g.  ulimit -n ${Math.max(needed, 20000)}  (as root, or via /etc/security/limits.conf;\n` +
      `see docs/operations.md, "Open files"), then run again.`,
  );
  process.exit(2);
}

/**
 * Starts test/soak/server.mjs in a child process with its open-files limit raised to `fileLimit`
 * (`sh -c 'ulimit -n N; exec node --expose-gc …'`). Resolves with { port, ask, stop }: ask(what)
 * returns the server's answer ({ fds, fileLimit, rss, heapUsed, stats }), stop() closes it.
 */
export async function startServerProcess({ handler, options, fileLimit }) {
  const args = [new URL('./server.mjs', import.meta.url).pathname, handler, JSON.stringify(options)];
  const child = spawn('sh', ['-c', `ulimit -n ${fileLimit} && exec "$0" --expose-gc "$@"`, process.execPath, ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let nextId = 0;
  const waiting = new Map();
  let onListening;
  const listening = new Promise((resolve, reject) => {
    onListening = resolve;
    exited.then(({ code, signal }) => reject(new Error(`the server process exited (${code ?? signal}) before listening`)));
  });
  child.on('message', (message) => {
    if (message.type === 'listening') onListening(message.port);
    else if (message.type === 'answer') {
      waiting.get(message.id)?.(message.answer);
      waiting.delete(message.id);
    }
  });
  const port = await listening;
  const ask = (what) =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      waiting.set(id, resolve);
      child.send({ type: 'ask', id, what }, (error) => error && reject(error));
    });
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.send({ type: 'stop' });
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const outcome = await exited;
    clearTimeout(timer);
    return outcome;
  };
  return { port, ask, stop, child };
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Fails the run (exit 1) if it is still going after `ms`. */
export function deadline(ms, what) {
  const timer = setTimeout(() => {
    console.error(`sockserv soak: ${what} did not finish within ${ms / 1000} s`);
    process.exit(1);
  }, ms);
  timer.unref();
  return timer;
}

export const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
