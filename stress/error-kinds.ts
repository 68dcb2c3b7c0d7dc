// Owns the mapping from socket errors to the error kinds a report shows. Kept apart so that what
// counts as "refused" or "reset" is decided in one place, not wherever an error is caught.

import type { ErrorKind } from './options.js';

export const ERROR_KINDS: readonly ErrorKind[] = ['refused', 'reset', 'timeout', 'badReply', 'other'];

export function classifyError(error: unknown): ErrorKind {
  switch ((error as NodeJS.ErrnoException | null | undefined)?.code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'ECONNABORTED':
    case 'EPIPE':
      return 'reset';
    case 'ETIMEDOUT':
      return 'timeout';
    default:
      return 'other';
  }
}
