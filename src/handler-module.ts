// Owns finding a handler class: a module URL plus an export name. Modules are imported once per
// thread and cached, so every later request reaches its class with one Map lookup.

import { pathToFileURL } from 'node:url';
import { ErrorCodes, SockservError } from './errors.js';
import type { AnyHandlerClass } from './handler.js';

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

async function importHandler(ref: HandlerRef): Promise<AnyHandlerClass> {
  let mod: Record<string, unknown>;
  try {
    mod = (await import(ref.url)) as Record<string, unknown>;
  } catch (cause) {
    throw new SockservError(
      ErrorCodes.HANDLER_LOAD,
      `cannot load handler module ${ref.url}: ${(cause as Error)?.message ?? cause}`,
      { cause },
    );
  }
  const candidate = mod[ref.exportName];
  if (typeof candidate !== 'function' || typeof candidate.prototype?.handle !== 'function') {
    const exported = Object.keys(mod).join(', ') || 'nothing';
    throw new SockservError(
      ErrorCodes.HANDLER_INVALID,
      `${ref.url} export "${ref.exportName}" is not a handler class with a handle() method (it exports: ${exported})`,
    );
  }
  return candidate as AnyHandlerClass;
}
