// Owns the `sockserv/register` entry: `node --import sockserv/register server.ts` runs a TypeScript
// program with tsx's ESM hook — the tsx sockserv itself depends on, resolved from sockserv's own
// folder, so a project needs no tsx of its own and does not rely on npm hoisting sockserv's to
// node_modules/tsx (a folder or linked install does not). Worker threads inherit the flag
// (execArgv) and register the same hook; handler modules need none of this (handler-module.ts
// registers tsx itself, lazily).

import 'tsx/esm';
