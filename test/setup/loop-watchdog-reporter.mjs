// Owns showing the loop watchdog's report where jest shows the failure. When the watchdog
// (./loop-watchdog.mjs) kills a stuck test process, jest only says "A jest worker process
// (pid=N) was terminated by another process: signal=SIGKILL" for the file; the report with the
// stuck stack went to that worker's stderr — which jest stops forwarding once a worker has been
// killed — and to <report directory>/N-<ms>.txt. This reporter, listed before jest's own, appends
// that file to the file's failure message, so the stack is printed with the FAIL and again in
// the summary of failing tests.

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { reportDirectory } from './loop-watchdog.mjs';

const KILLED = /A jest worker process \(pid=(\d+)\) was terminated by another process: signal=SIGKILL/;

export default class LoopWatchdogReporter {
  onTestFileResult(_test, result) {
    const pid = KILLED.exec(result.testExecError?.message ?? '')?.[1];
    if (pid === undefined) return;
    const dir = reportDirectory();
    let names = [];
    try {
      names = readdirSync(dir).filter((name) => name.startsWith(`${pid}-`)).sort();
    } catch {
      return; // no report: the process was killed by something else
    }
    const name = names.at(-1);
    if (name === undefined) return;
    const file = join(dir, name);
    const report = readFileSync(file, 'utf8').trimEnd().replace(/^/gm, '    ');
    result.failureMessage = `${result.failureMessage ?? ''}\n    The loop watchdog killed it (${file}):\n\n${report}\n`;
  }
}
