// Owns finding the compiled worker entry. Worker threads load JavaScript only (Node 20 cannot
// strip types), so the entry is always dist/workers/handler-host.js — next to this file once
// compiled, or under dist/ when this file runs from source (ts-jest), which is why `npm test`
// builds first.

import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ErrorCodes, SockservError } from '../errors.js';

export function workerEntryUrl(): URL {
  const self = fileURLToPath(import.meta.url); // <root>/src/dispatch/… .ts, or <root>/dist/src/dispatch/… .js
  const here = dirname(self);
  const fromSource = self.endsWith('.ts');
  const entry = fromSource
    ? resolve(here, '../../dist/workers/handler-host.js')
    : resolve(here, '../../workers/handler-host.js');
  if (!existsSync(entry)) {
    throw new SockservError(
      ErrorCodes.HANDLER_LOAD,
      `worker entry ${entry} is missing: run \`npm run build\` (workers load compiled JavaScript)`,
    );
  }
  return pathToFileURL(entry);
}
