// The stress tool's programmatic API: runStress drives framed TCP load (one payload or a weighted
// mix; kept-alive connections or one per request) at a server and resolves with throughput, HDR
// latency percentiles (per kind of a mix too), errors by kind and a per-second timeline.
// `sockserv stress` (cli.ts) is a thin command line over the same function.
//
// Why a top-level folder, like bench/: this is a client (its own connections, reply framers and
// report), not part of the server library, so nothing here is exported by the package. It is
// compiled to dist/stress/ and shipped only so that the `sockserv stress` command (src/cli/main.ts)
// can hand over to it. It may import from src/ (the CLI's UsageError); src/ imports only cli.ts.

export { runStress } from './run.js';
export type { KindResult, MixEntry, StressOptions, StressResult } from './options.js';
