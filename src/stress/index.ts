// The stress tool's programmatic API: runStress drives framed TCP load at a server and resolves
// with throughput, HDR latency percentiles, errors by kind and a per-second timeline.
// `sockserv stress` (cli.ts) is a thin command line over the same function.

export { runStress } from './run.js';
export { MAX_PIPELINE, STRESS_DEFAULTS, resolveStressOptions } from './options.js';
export type { ErrorKind, ProgressSample, StressFraming, StressOptions, StressResult } from './options.js';
export { formatJson, formatReport } from './report.js';
export type { ReportContext } from './report.js';
export { checkTargetHost, isLoopbackAddress, parseTarget } from './target.js';
export type { Target } from './target.js';
