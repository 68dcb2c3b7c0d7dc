// Owns `sockserv serve --watch`: a development mode that reloads the handler (./reload.ts) when
// its module, or any file it imports, changes — connections stay open. Which files: the handler's
// import graph as esbuild (already a dependency, through tsx) resolves it — relative and absolute
// imports, TypeScript included, tsconfig paths applied, packages left out — collected again after
// every reload, so a new import is watched from then on. Each file's directory is watched
// (fs.watch, not recursive) and its events filtered by file name: an editor that saves by
// replacing the file is seen, and nothing else in the directory (logs, node_modules, .git)
// triggers a reload. A directory-wide recursive watch would reload on all of those, and miss
// an import from outside the directory.
//
// Invariants: a burst of events (one save is often several) makes one reload, DEBOUNCE_MS after
// the last event; reloads never overlap — a change during one makes exactly one more after it.
// If the graph cannot be collected (the module does not parse), the files known before stay
// watched, plus the module itself. close() stops every watcher and timer.

import { type FSWatcher, watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import type { Logger } from '../logger.js';

/** Quiet time after the last file event before the reload starts. */
const DEBOUNCE_MS = 100;

export interface ImportWatcher {
  /** Stops watching (idempotent). */
  close(): void;
}

/**
 * Watches `entry` and the files it imports; calls `reload` (awaited) after a change, then
 * collects the import graph again. Resolves once the first graph is watched.
 */
export async function watchImports(entry: string, reload: () => Promise<unknown>, logger: Logger): Promise<ImportWatcher> {
  const watchers = new Map<string, FSWatcher>();
  let files = new Set<string>([resolve(entry)]);
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let again = false;
  let closed = false;

  const schedule = () => {
    if (closed) return;
    clearTimeout(timer);
    timer = setTimeout(fire, DEBOUNCE_MS);
  };
  const fire = () => {
    timer = undefined;
    if (running) {
      again = true;
      return;
    }
    running = true;
    void (async () => {
      try {
        await reload();
        await refresh();
      } finally {
        running = false;
        if (again && !closed) {
          again = false;
          schedule();
        }
      }
    })();
  };
  /** Collects the graph again and watches the directories it spans (and no others). */
  const refresh = async () => {
    const graph = await importGraph(entry, logger);
    if (closed) return;
    files = graph === null ? new Set([...files, resolve(entry)]) : graph;
    const dirs = new Set([...files].map((file) => dirname(file)));
    for (const [dir, watcher] of watchers) {
      if (dirs.has(dir)) continue;
      watcher.close();
      watchers.delete(dir);
    }
    for (const dir of dirs) {
      if (watchers.has(dir)) continue;
      try {
        const watcher = watch(dir, { persistent: true }, (_event, name) => {
          // No name (rare, platform-dependent): any change there may be ours.
          if (name === null || files.has(resolve(dir, name.toString()))) schedule();
        });
        watcher.on('error', (err) => logger.debug({ err, dir }, '--watch: a watcher failed'));
        watchers.set(dir, watcher);
      } catch (err) {
        logger.warn({ err, dir }, `--watch: cannot watch ${dir}`);
      }
    }
  };

  await refresh();
  logger.info({ files: files.size }, `watching ${basename(entry)} and the ${files.size - 1} file${files.size === 2 ? '' : 's'} it imports: a change reloads it`);
  return {
    close() {
      closed = true;
      clearTimeout(timer);
      for (const watcher of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}

/** The files `entry` imports, itself included (absolute paths); null if esbuild cannot follow them (a syntax error, say). */
async function importGraph(entry: string, logger: Logger): Promise<Set<string> | null> {
  const workingDir = dirname(resolve(entry));
  try {
    const { build } = await import('esbuild');
    const result = await build({
      entryPoints: [resolve(entry)],
      absWorkingDir: workingDir,
      bundle: true,
      write: false,
      metafile: true,
      platform: 'node',
      format: 'esm',
      packages: 'external',
      logLevel: 'silent',
    });
    return new Set(Object.keys(result.metafile.inputs).map((input) => resolve(workingDir, input)));
  } catch (err) {
    logger.debug({ err }, '--watch: cannot collect the imports now; watching the files known so far');
    return null;
  }
}
