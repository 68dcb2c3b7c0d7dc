// Owns the system tools `npm run test:system` needs, and the one way its tests demand them: a
// missing tool is a failure naming the Debian package that provides it (never a skip). `.ci/run`
// installs them all; test/system/tools.test.ts checks them all at once.

import { spawnSync } from 'node:child_process';

/** A tool, how to see that it runs, and the Debian package(s) that install it. */
export interface Tool {
  command: string;
  versionArgs: string[];
  packages: string;
}

export const TOOLS = {
  nginx: { command: 'nginx', versionArgs: ['-v'], packages: 'nginx libnginx-mod-stream' },
  redisCli: { command: 'redis-cli', versionArgs: ['--version'], packages: 'redis-tools' },
  redisServer: { command: 'redis-server', versionArgs: ['--version'], packages: 'redis-server' },
  openssl: { command: 'openssl', versionArgs: ['version'], packages: 'openssl' },
  haproxy: { command: 'haproxy', versionArgs: ['-v'], packages: 'haproxy' },
} as const satisfies Record<string, Tool>;

/** Why `tool` cannot run here (not on PATH, or it fails), or undefined when it runs. */
function toolProblem(tool: Tool): string | undefined {
  const result = spawnSync(tool.command, tool.versionArgs, { encoding: 'utf8', timeout: 10_000 });
  const code = (result.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOENT') return `${tool.command} is not installed (not on PATH): apt-get install ${tool.packages}`;
  if (result.error) return `${tool.command} ${tool.versionArgs.join(' ')} failed: ${result.error.message} (Debian: apt-get install ${tool.packages})`;
  if (result.status !== 0) {
    return `${tool.command} ${tool.versionArgs.join(' ')} exited ${result.status}: ${result.stderr.trim()} (Debian: apt-get install ${tool.packages})`;
  }
  return undefined;
}

/** Throws (failing the test or hook that calls it) unless every tool runs; the message names the packages. */
export function requireTools(...tools: Tool[]): void {
  const problems = tools.map(toolProblem).filter((p): p is string => p !== undefined);
  if (problems.length === 0) return;
  const packages = [...new Set(tools.filter((t) => toolProblem(t) !== undefined).flatMap((t) => t.packages.split(' ')))];
  throw new Error(
    `npm run test:system needs system tools that are missing here:\n  ${problems.join('\n  ')}\n` +
      `Install them (Debian/Ubuntu, as root): apt-get update && apt-get install -y ${packages.join(' ')}\n` +
      '(.ci/run does this; `npm test` itself needs none of them.)',
  );
}
