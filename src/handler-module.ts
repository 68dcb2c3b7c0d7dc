// Owns finding a handler class: a module URL plus an export name. Modules are imported once per
// thread and cached, so every later request reaches its class with one Map lookup. TypeScript
// handler modules (.ts, .mts, .cts) load as written: the first one a thread imports registers
// tsx's ESM hook in that thread (main thread or worker), and never before — .js handlers pay
// nothing. A module that fails to load becomes ERR_HANDLER_LOAD naming its file, line and message;
// an export that is not a handler class (checkHandlerClass) is ERR_HANDLER_INVALID, at load, not
// at the first request.

import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ErrorCodes, SockservError } from './errors.js';
import { type AnyHandlerClass, HandlerBase } from './handler.js';

/** Where a handler lives: a file URL (or absolute path) and the export holding the class. */
export interface HandlerRef {
  url: string;
  exportName: string;
}

export function toHandlerRef(module: string | URL, exportName = 'default'): HandlerRef {
  let url: string;
  if (module instanceof URL) url = module.href;
  else if (/^[a-z][a-z0-9+.-]*:/i.test(module) && !/^[a-z]:[\\/]/i.test(module)) url = module;
  else url = pathToFileURL(module).href;
  return { url, exportName };
}

const loaded = new Map<string, AnyHandlerClass>();
const loading = new Map<string, Promise<AnyHandlerClass>>();

function keyOf(ref: HandlerRef): string {
  return `${ref.url}#${ref.exportName}`;
}

export function loadHandler(ref: HandlerRef): Promise<AnyHandlerClass> {
  const key = keyOf(ref);
  const ready = loaded.get(key);
  if (ready) return Promise.resolve(ready);
  let pending = loading.get(key);
  if (!pending) {
    pending = importHandler(ref).then(
      (cls) => {
        loaded.set(key, cls);
        loading.delete(key);
        return cls;
      },
      (error: unknown) => {
        loading.delete(key);
        throw error;
      },
    );
    loading.set(key, pending);
  }
  return pending;
}

/** Handler modules tsx compiles on import: TypeScript. */
const TYPESCRIPT = /\.[cm]?ts$/i;

let tsxRegistered: Promise<void> | undefined;

/**
 * Registers tsx's ESM hook in this thread, once. Loaded lazily, so threads that only ever see
 * .js handlers never load tsx or esbuild. tsx reads the tsconfig.json nearest the (first)
 * TypeScript handler module — its project's, not the working directory's — or, when there is
 * none above it, tsx's default (the working directory's).
 */
function registerTypeScript(url: string): Promise<void> {
  tsxRegistered ??= (async () => {
    const tsconfig = url.startsWith('file:') ? nearestFile(dirname(fileURLToPath(url)), 'tsconfig.json') : undefined;
    const { register } = await import('tsx/esm/api');
    register(tsconfig === undefined ? {} : { tsconfig });
  })();
  return tsxRegistered;
}

/**
 * Why a TypeScript module cannot be a handler, or undefined if it can. Handlers are ES modules
 * (they import sockserv, an ES module), and Node 20 treats a .cts file, or a .ts file outside a
 * "type": "module" package, as CommonJS — which cannot import sockserv there.
 */
function commonJsTypeScript(url: string): string | undefined {
  if (!url.startsWith('file:')) return undefined;
  const path = fileURLToPath(url);
  if (/\.mts$/i.test(path)) return undefined;
  if (/\.cts$/i.test(path)) return 'a .cts file is CommonJS; sockserv loads TypeScript handlers as ES modules: rename it .mts or .ts (in a "type": "module" package)';
  const pkg = nearestFile(dirname(path), 'package.json');
  let type: unknown;
  try {
    type = pkg === undefined ? undefined : (JSON.parse(readFileSync(pkg, 'utf8')) as { type?: unknown }).type;
  } catch {
    return undefined; // let the import report it
  }
  if (type === 'module') return undefined;
  return `a .ts file is CommonJS unless its package.json says "type": "module" (${pkg ?? 'no package.json above it'}); sockserv loads TypeScript handlers as ES modules: add "type": "module" or rename it .mts`;
}

/** Whether `url` names a TypeScript module (the query and hash aside). */
function isTypeScriptModule(url: string): boolean {
  return TYPESCRIPT.test(url.replace(/[?#].*$/, ''));
}

async function importHandler(ref: HandlerRef): Promise<AnyHandlerClass> {
  let mod: Record<string, unknown>;
  try {
    if (isTypeScriptModule(ref.url)) {
      const why = commonJsTypeScript(ref.url);
      if (why !== undefined) throw new Error(why);
      await registerTypeScript(ref.url);
    }
    mod = (await import(ref.url)) as Record<string, unknown>;
  } catch (cause) {
    // A missing file is said so: Node's own message names the importer, sockserv's handler-module.js.
    const where = isMissingFile(ref.url) ? 'no such file' : ((await syntaxErrorLocation(ref.url, cause)) ?? describeLoadError(cause));
    throw new SockservError(ErrorCodes.HANDLER_LOAD, `cannot load handler module ${displayPath(ref.url)}: ${where}`, { cause });
  }
  const candidate = mod[ref.exportName];
  if (typeof candidate !== 'function') {
    const exported = Object.keys(mod).join(', ') || 'nothing';
    throw new SockservError(
      ErrorCodes.HANDLER_INVALID,
      `${displayPath(ref.url)} export "${ref.exportName}" is not a handler class (it exports: ${exported})`,
    );
  }
  checkHandlerClass(candidate, `export "${ref.exportName}" of ${displayPath(ref.url)}`);
  return candidate;
}

/**
 * Throws ERR_HANDLER_INVALID unless `candidate` is a handler class: one that extends
 * BaseRequestHandler, StreamRequestHandler or DatagramRequestHandler, or has setup(), handle()
 * and finish() of its own (a class from a second copy of sockserv, say). Without this check a
 * class that forgot its `extends` loaded, the server listened, and every request failed with
 * "handler.setup is not a function". `where` says where the class came from, for the message.
 */
export function checkHandlerClass(candidate: unknown, where: string): asserts candidate is AnyHandlerClass {
  const prototype = typeof candidate === 'function' ? (candidate.prototype as Record<string, unknown> | undefined) : undefined;
  if (prototype instanceof HandlerBase) return;
  const missing = ['setup', 'handle', 'finish'].filter((method) => typeof prototype?.[method] !== 'function');
  if (prototype !== undefined && missing.length === 0) return;
  const own = typeof candidate === 'function' ? candidate.name : '';
  const name = own === '' || own === 'default' ? 'Handler' : own; // `export default class {}` is named "default"
  const what = prototype === undefined ? `${where} is not a class` : `class ${name} (${where}) does not extend a sockserv handler class`;
  throw new SockservError(
    ErrorCodes.HANDLER_INVALID,
    `${what}: declare it \`class ${name} extends BaseRequestHandler\` (one instance per request), StreamRequestHandler (per connection) or DatagramRequestHandler (UDP), imported from 'sockserv'`,
  );
}

/** Whether `url` is a file: URL naming no file. */
function isMissingFile(url: string): boolean {
  try {
    return url.startsWith('file:') && !existsSync(fileURLToPath(url));
  } catch {
    return false;
  }
}

/** A module URL as people read it: the path of a file: URL, any other URL as it is. */
function displayPath(url: string): string {
  return url.startsWith('file:') ? asPath(url) : url;
}

/** The nearest `name` in `dir` or a directory above it. */
function nearestFile(dir: string, name: string): string | undefined {
  for (;;) {
    const candidate = join(dir, name);
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/**
 * `FILE:LINE:COLUMN: MESSAGE` for a module that failed to load, where the error says where:
 * esbuild's (tsx's) "Transform failed" errors, V8's SyntaxError banner (`URL:LINE` above the
 * source line), or the module's own frame in the stack of an error thrown while it ran.
 * Otherwise the message alone (a missing file, say).
 */
function describeLoadError(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  const message = cause.message;
  const esbuild = /^(.+?):(\d+):(\d+): ERROR: (.*)$/m.exec(message);
  // esbuild counts columns from 0; V8's frames (and editors) from 1.
  if (esbuild) return `${esbuild[1]}:${esbuild[2]}:${Number(esbuild[3]) + 1}: ${esbuild[4]}`;
  const stack = cause.stack ?? '';
  const banner = /^((?:file:\/\/|\/)\S+?):(\d+)\n/.exec(stack);
  if (banner) return `${asPath(banner[1]!)}:${banner[2]}: ${cause.name}: ${message}`;
  // The first frame in the user's code: not Node's, not a dependency's, not sockserv's own.
  for (const match of stack.matchAll(/(?:^|[\s(])((?:file:\/\/)?\/[^\s()]+?):(\d+):(\d+)\)?$/gm)) {
    const file = asPath(match[1]!);
    if (file.includes('/node_modules/') || file.startsWith(OWN_DIR)) continue;
    return `${file}:${match[2]}:${match[3]}: ${cause.name}: ${message}`;
  }
  return message;
}

/**
 * Node 20 reports an ES module's SyntaxError without its line. For a JavaScript handler that
 * fails so, esbuild (tsx's, already installed) parses the file to say where: `FILE:LINE:COLUMN:
 * SyntaxError: MESSAGE`. Undefined when that does not apply or esbuild finds nothing (the error
 * is in a module the handler imports, say).
 */
async function syntaxErrorLocation(url: string, cause: unknown): Promise<string | undefined> {
  if (!(cause instanceof SyntaxError) || !url.startsWith('file:') || isTypeScriptModule(url)) return undefined;
  try {
    const path = fileURLToPath(url);
    const { transform } = await import('esbuild');
    await transform(readFileSync(path, 'utf8'), { loader: 'js', format: /\.cjs$/i.test(path) ? 'cjs' : 'esm', sourcefile: path });
    return undefined;
  } catch (error) {
    const location = (error as { errors?: Array<{ location?: { file: string; line: number; column: number } | null }> }).errors?.[0]?.location;
    if (!location) return undefined;
    return `${location.file}:${location.line}:${location.column + 1}: SyntaxError: ${cause.message}`;
  }
}

/** The directory of sockserv's own modules (dist/src, or src under ts-jest): their frames are never the culprit. */
const OWN_DIR = fileURLToPath(new URL('.', import.meta.url));

function asPath(location: string): string {
  try {
    return location.startsWith('file:') ? fileURLToPath(location) : location;
  } catch {
    return location;
  }
}
