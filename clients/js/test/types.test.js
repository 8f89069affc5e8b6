// index.d.ts: `tsc --noEmit` on test/example.ts (the seed's example in TypeScript, every
// method, and calls the types must refuse, marked @ts-expect-error); and the declared
// runtime exports are the module's.

import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import * as client from '../index.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const PACKAGE = path.resolve(HERE, '..');
const TSC = path.join(PACKAGE, 'node_modules', 'typescript', 'bin', 'tsc');

test('tsc --noEmit passes on the typed example', async () => {
  assert.ok(existsSync(TSC), `no TypeScript at ${TSC}: run npm ci in ${PACKAGE}`);
  try {
    await promisify(execFile)(process.execPath,
      [TSC, '--noEmit', '-p', path.join(HERE, 'tsconfig.json')], { cwd: PACKAGE });
  } catch (err) {
    assert.fail(`tsc failed:\n${err.stdout}${err.stderr}`);
  }
});

test('index.d.ts declares what index.js exports', () => {
  const declared = [...readFileSync(path.join(PACKAGE, 'index.d.ts'), 'utf8')
    .matchAll(/^export (?:class|const|function) (\w+)/gm)].map((m) => m[1]);
  assert.deepEqual([...declared, 'default'].sort(), Object.keys(client).sort());
});
