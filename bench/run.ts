// Owns `npm run bench`: parse the flags, run the chosen scenarios one after another, and write
// bench/results/latest.json, BENCHMARKS.md and BENCHMARKS.svg. Also owns the run's bounds: a
// watchdog caps the whole run, and every server child is stopped at the end, on errors and on
// SIGINT/SIGTERM (the children also exit by themselves if this process dies).
//   npm run bench [-- --quick] [-- --only trivial,cpu,responsiveness,connections,cheap,sessions,churn,broadcast] [-- --report-only]

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { renderChart } from './chart.js';
import { killAllNow, stopAll } from './children.js';
import { benchConfig } from './config.js';
import { describeMachine } from './machine.js';
import { renderReport } from './report.js';
import { type BenchResults, SCENARIO_IDS, type ScenarioId, type ScenarioResult, readResults, writeResults } from './results.js';
import { cheapUnderHeavy } from './scenarios/cheap-under-heavy.js';
import { churn } from './scenarios/churn.js';
import { light } from './scenarios/light.js';
import { manyConnections } from './scenarios/connections.js';
import { cpuHeavy } from './scenarios/cpu-heavy.js';
import { responsiveness } from './scenarios/responsiveness.js';
import type { BenchContext, Scenario } from './scenarios/scenario.js';
import { sessions } from './scenarios/sessions.js';
import { trivial } from './scenarios/trivial.js';
import { broadcast } from './scenarios/broadcast.js';
import { REPO_ROOT } from './servers.js';
import { evaluateTargets } from './targets.js';
import type { TargetResult } from './results.js';

const SCENARIOS: Record<ScenarioId, Scenario> = {
  trivial,
  cpu: cpuHeavy,
  responsiveness,
  connections: manyConnections,
  cheap: cheapUnderHeavy,
  sessions,
  churn,
  broadcast,
  light,
};
const RESULTS_PATH = join(REPO_ROOT, 'bench/results/latest.json');
const REPORT_PATH = join(REPO_ROOT, 'BENCHMARKS.md');
const CHART_FILE = 'BENCHMARKS.svg';
const USAGE = `usage: npm run bench [-- --quick] [-- --only ${SCENARIO_IDS.join(',')}] [-- --report-only]`;

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    'report-only': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
if (values['report-only']) {
  // Re-render BENCHMARKS.md and the chart from latest.json without measuring anything.
  const saved = readResults(RESULTS_PATH);
  if (!saved) {
    console.error('no bench/results/latest.json to report on: run the bench first');
    process.exit(2);
  }
  writeOutputs(saved);
  process.exit(0);
}
const selected = (values.only?.split(',').map((s) => s.trim()) ?? [...SCENARIO_IDS]) as ScenarioId[];
const unknown = selected.filter((id) => !SCENARIO_IDS.includes(id));
if (unknown.length > 0) {
  console.error(`unknown scenario ${unknown.join(', ')}\n${USAGE}`);
  process.exit(2);
}

const config = benchConfig(values.quick);
const controller = new AbortController();
const log = (line: string): void => void process.stderr.write(`[bench] ${line}\n`);

// Bounds: servers never outlive the harness, and the whole run has a hard cap.
process.on('exit', killAllNow);
let interrupts = 0;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    log(`${signal}: stopping every server and exiting`);
    controller.abort(new Error(signal));
    killAllNow();
    if (++interrupts > 1) process.exit(130);
    setTimeout(() => process.exit(130), 1500).unref();
  });
}
const capSec = values.quick ? 240 : 1080;
setTimeout(() => {
  log(`the run exceeded ${capSec} s: stopping every server`);
  killAllNow();
  process.exit(1);
}, capSec * 1000).unref();

const ctx: BenchContext = { config, signal: controller.signal, log };
const previous = values.only ? readResults(RESULTS_PATH) : undefined;
const results: BenchResults = {
  machine: describeMachine(),
  command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  finishedAt: '',
  scenarios: { ...previous?.scenarios },
};
log(`${results.command}: ${selected.join(', ')} on ${results.machine.cpus} × ${results.machine.cpuModel} (load ${results.machine.loadAverage1m})`);

let failed = false;
const started = performance.now();
for (const id of selected) {
  if (controller.signal.aborted) break;
  const scenario = SCENARIOS[id];
  const startedAt = new Date().toISOString();
  const t0 = performance.now();
  log(`— ${scenario.title}`);
  let result: ScenarioResult;
  try {
    const out = await scenario.run(ctx);
    result = { id, quick: config.quick, startedAt, wallSec: secondsSince(t0), ...out, title: out.title ?? scenario.title };
  } catch (error) {
    if (controller.signal.aborted) break;
    failed = true;
    log(`${id} failed: ${(error as Error).stack ?? String(error)}`);
    result = {
      id,
      title: scenario.title,
      description: '',
      quick: config.quick,
      startedAt,
      wallSec: secondsSince(t0),
      commands: {},
      groups: [],
      error: (error as Error).message,
    };
  } finally {
    await stopAll();
  }
  results.scenarios[id] = result;
}
if (controller.signal.aborted) process.exit(130);

results.finishedAt = new Date().toISOString();
writeResults(RESULTS_PATH, results);
const targets = writeOutputs(results);

log(`done in ${secondsSince(started)} s — wrote bench/results/latest.json, BENCHMARKS.md, ${CHART_FILE}`);
for (const t of targets) {
  const verdict = t.met === null ? 'not measured' : t.met ? 'met' : 'NOT MET';
  log(`target: ${t.name.padEnd(46)} ${t.goal.padEnd(34)} ${t.measured.padEnd(22)} ${verdict}`);
}
process.exit(failed ? 1 : 0);

/** Writes BENCHMARKS.md and the chart from `results`; returns the judged targets. */
function writeOutputs(results: BenchResults): TargetResult[] {
  const targets = evaluateTargets(results);
  writeFileSync(join(REPO_ROOT, CHART_FILE), renderChart(results));
  const notesPath = join(REPO_ROOT, 'bench/NOTES.md');
  const notes = existsSync(notesPath) ? readFileSync(notesPath, 'utf8') : '';
  writeFileSync(REPORT_PATH, renderReport(results, targets, CHART_FILE, notes));
  return targets;
}

function secondsSince(t0: number): number {
  return Math.round((performance.now() - t0) / 100) / 10;
}
