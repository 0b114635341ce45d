// ctest entry point of the OpenAPI conformance test:
//   node run.mjs --sipbx PATH
// Installs ajv, ajv-formats and the OpenAPI 3.1 schema into tests/openapi/node_modules
// (npm install: a no-op when they are there), then runs conformance.test.mjs with node's
// test runner against that sipbx. Exit status 77 (ctest: skipped) only when they are not
// installed and the npm registry cannot be reached.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const i = args.indexOf('--sipbx');
const sipbx = i >= 0 ? args[i + 1] : null;
if (!sipbx || !fs.existsSync(sipbx)) {
  console.error('usage: node run.mjs --sipbx PATH (an existing sipbx binary)');
  process.exit(2);
}

function installed() {
  const want = JSON.parse(fs.readFileSync(path.join(HERE, 'package.json'), 'utf8')).devDependencies;
  return Object.entries(want).every(([name, version]) => {
    try {
      return JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules', name, 'package.json'), 'utf8')).version === version;
    } catch {
      return false;
    }
  });
}

const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
  cwd: HERE, encoding: 'utf8', timeout: 180000, env: { ...process.env, npm_config_update_notifier: 'false' },
});
if (npm.status !== 0 && !installed()) {
  const why = (npm.stderr || npm.error?.message || '').trim().split('\n').slice(-3).join('\n');
  const ping = spawnSync('npm', ['ping', '--loglevel=error'], { cwd: HERE, encoding: 'utf8', timeout: 30000 });
  if (ping.status !== 0) {
    console.log('SKIP: the npm registry cannot be reached and ajv is not installed in tests/openapi/node_modules;');
    console.log('      the OpenAPI conformance test did not run. (npm said: ' + why + ')');
    process.exit(77);
  }
  console.error('npm install failed although the registry answers:\n' + why);
  process.exit(1);
}

const run = spawnSync(process.execPath, ['--test', '--test-reporter=spec', path.join(HERE, 'conformance.test.mjs')], {
  cwd: HERE, stdio: 'inherit', timeout: 600000, env: { ...process.env, SIPBX_BIN: path.resolve(sipbx) },
});
process.exit(run.status === null ? 1 : run.status);
