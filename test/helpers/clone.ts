// Test helper: a fresh clone of this working tree, as a newcomer gets from `git clone` — every
// file git tracks or would track (uncommitted edits included, so the tests see the code under
// test), and no dist/ and no node_modules/. `withDependencies` links the repository's installed
// node_modules/ into it, standing in for the `npm ci` a clone needs (which takes half a minute and
// is npm's job, not what these tests are about).

import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, symlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROOT } from './cli-process.js';

export function freshClone(into: string, { withDependencies }: { withDependencies: boolean }): string {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' }).split('\0');
  for (const file of files) {
    // A file deleted in the working tree but not yet in git's index is not part of the clone-to-be.
    if (file === '' || !existsSync(join(ROOT, file))) continue;
    mkdirSync(dirname(join(into, file)), { recursive: true });
    copyFileSync(join(ROOT, file), join(into, file));
  }
  if (withDependencies) symlinkSync(join(ROOT, 'node_modules'), join(into, 'node_modules'), 'dir');
  return into;
}
