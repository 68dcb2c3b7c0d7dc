// Owns the CLI's "bad arguments" error: printed as one clear line, exit code 2.

export class UsageError extends Error {
  override name = 'UsageError';
}

/** Parses a whole, non-negative number option or throws UsageError naming the flag. */
export function parseCount(flag: string, value: string | undefined, min = 0): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new UsageError(`${flag} must be a whole number >= ${min} (got "${value}")`);
  }
  return Number(value);
}
