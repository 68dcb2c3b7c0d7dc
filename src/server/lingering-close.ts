// Owns ending a stream connection without losing its last replies: lingering close, as nginx does
// it (lingering_close, lingering_time, lingering_timeout). Linux answers close() on a socket
// whose receive queue holds unread bytes with a reset, and the reset discards whatever of our
// replies is still in the send queue — a client that sent one request too many (a line past
// maxFrameBytes, a pipeline behind a failed request, anything sent during a drain) would lose
// replies the server accepted to send. So the server half-closes (FIN after the last reply), then
// keeps reading and discarding input until the client's FIN, or lingeringTimeout ms without any
// input, or lingeringTime ms in all after its replies reached the kernel; only then is the
// socket released. A client that keeps reading gets every byte and a clean FIN.

import type { Socket } from 'node:net';

export interface LingeringLimits {
  /** Most ms to linger after the last reply was handed to the kernel; 0 = release at once. */
  lingeringTime: number;
  /** Most ms to wait for the next input (or the FIN) while lingering. */
  lingeringTimeout: number;
}

const discard = (): void => {};

/** Half-closes `socket` after what is queued, drains its input for a bounded time, then calls `release` (once). */
export function lingeringClose(socket: Socket, limits: LingeringLimits, release: () => void): void {
  // Whatever the connection did before, the socket now has a listener for its errors: a reset
  // from the client while we linger is expected, never an uncaught 'error'.
  socket.on('error', discard);
  let released = false;
  let total: NodeJS.Timeout | undefined;
  let quiet: NodeJS.Timeout | undefined;
  const done = (): void => {
    clearTimeout(total);
    clearTimeout(quiet);
    if (released) return;
    released = true;
    release();
  };
  socket.once('close', done);
  if (socket.destroyed) return done();
  // Read and drop input from now on, also while our replies are still being flushed: a client
  // blocked on writing a huge request would otherwise never read our replies (a deadlock).
  // refresh() would re-arm a cleared timer: never after release.
  socket.on('data', () => released || quiet?.refresh());
  socket.resume();
  socket.end((err?: Error | null) => {
    // Our replies and FIN are with the kernel — or the socket was destroyed meanwhile (err), and
    // its 'close' releases it; arming the timers then would only keep them alive. A client that
    // already sent its FIN is done (the socket closes by itself); otherwise wait, bounded, for it.
    if (err || released || socket.readableEnded || limits.lingeringTime === 0) return done();
    socket.once('end', done);
    total = setTimeout(done, limits.lingeringTime).unref();
    quiet = setTimeout(done, Math.min(limits.lingeringTimeout, limits.lingeringTime)).unref();
  });
}
