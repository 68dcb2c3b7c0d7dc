// Owns how the CLI reports a failure to start: one line on stderr, `sockserv: CODE: why`, the
// stable code first — an ErrorCodes value, or the system's (EADDRINUSE, EACCES…) — and no stack,
// which shows sockserv's insides rather than what to change. --log-level debug adds the stack.

/** The report of `error` for stderr: one line, then the stack when `withStack`. */
export function failureReport(error: unknown, withStack: boolean): string {
  const stack = withStack && error instanceof Error && error.stack !== undefined ? `${error.stack}\n` : '';
  return `sockserv: ${describe(error)}\n${stack}`;
}

interface SystemError extends Error {
  code: string;
  syscall?: string;
  address?: string;
  port?: number;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { code } = error as Partial<SystemError>;
  // A worker's error crosses to the main thread as "NAME: message" (errors.ts fromErrorInfo).
  const message = firstLine(error.message.replace(/^SockservError: /, ''));
  if (typeof code !== 'string') return `${error.name}: ${message} (--log-level debug shows the stack)`;
  const system = error as SystemError;
  if (system.syscall === 'listen' || system.syscall === 'bind') return `${code}: ${cannotListen(system)}`;
  return `${code}: ${message}`;
}

/** `cannot listen on WHERE: why (what to do)`, from Node's `listen EADDRINUSE: address already in use 127.0.0.1:8001`. */
function cannotListen(error: SystemError): string {
  const where = error.port === undefined || error.port === -1 ? error.address : `${error.address}:${error.port}`;
  const why = REASONS[error.code]?.(error) ?? firstLine(error.message).replace(`${error.syscall} ${error.code}: `, '').replace(` ${where ?? ''}`, '');
  return `cannot listen on ${where}: ${why}`;
}

/** What the usual listen failures mean and what to do; said the same whether Node's message came from listen() or, under --processes, from a cluster worker's bind. */
const REASONS: Record<string, (error: SystemError) => string> = {
  EADDRINUSE: () => 'address already in use (another process is listening there: choose another port, or 0 for any free one)',
  EACCES: (error) =>
    error.port === undefined || error.port === -1
      ? 'permission denied (the socket cannot be created there: choose a path in a directory you may write to)'
      : 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE: choose a higher port)',
  EADDRNOTAVAIL: () => 'address not available (no network interface of this machine has that address: check --host)',
};

function firstLine(text: string): string {
  const end = text.indexOf('\n');
  return end === -1 ? text : text.slice(0, end);
}
