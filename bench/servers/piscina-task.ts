// The piscina task of the one-task-per-request baseline: one line in, its reply out.

import { workerData } from 'node:worker_threads';
import { type WorkName, replyFor } from '../work.js';

const work = (workerData as { work: WorkName }).work;

export default function reply(line: string): string {
  return replyFor(work, Buffer.from(line, 'latin1'));
}
