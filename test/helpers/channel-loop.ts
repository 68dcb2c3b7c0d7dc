// The worker end of a WorkerChannel run on the test's own thread (no piscina, no worker thread):
// a ChannelLoop given the task the pool would send (workers/channel-loop.ts), so a test drives both
// ends of one channel and sees exactly what each side did.

import type { WorkerChannel } from '../../src/dispatch/worker-channel.js';
import type { AnyHandlerClass } from '../../src/handler.js';
import { ChannelLoop } from '../../workers/channel-loop.js';

/** A loop serving `channel` with `Handler` (a plain-JavaScript fixture class is fine); `data` is the server's `data`. */
export function loopOn<C>(channel: WorkerChannel<C>, Handler: unknown, data: unknown = null): ChannelLoop {
  return new ChannelLoop(Handler as AnyHandlerClass, {
    server: { address: { host: '127.0.0.1', port: 0, family: 'IPv4' }, framing: 'line', data },
    buffers: channel.buffers,
    port: channel.workerPort,
    limits: { readHighWaterMark: 65536, maxFrameBytes: 1 << 20 },
    rooms: { refused: false, maxPushBytes: 32 << 20 },
  });
}
