// ctest entry point of the browser tests:
//   node run.mjs --sipbx PATH [--sipp PATH] [--artifacts DIR]
// Installs playwright-core into tests/web/node_modules (npm install; no browser is ever
// downloaded: the tests drive Debian's /usr/bin/chromium), then runs dashboard.test.mjs
// with node's test runner. Exit status 77 (ctest: skipped) only when playwright-core is
// not installed and the npm registry cannot be reached.

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const sipbx = opt('--sipbx');
const sipp = opt('--sipp', '/usr/bin/sipp');
const artifacts = opt('--artifacts', path.join(process.cwd(), 'web-artifacts'));
const chromium = process.env.CHROMIUM || '/usr/bin/chromium';

if (!sipbx) {
  console.error('usage: node run.mjs --sipbx PATH [--sipp PATH] [--artifacts DIR]');
  process.exit(2);
}

function installed() {
  try {
    const want = JSON.parse(fs.readFileSync(path.join(HERE, 'package.json'), 'utf8')).devDependencies['playwright-core'];
    const have = JSON.parse(fs.readFileSync(path.join(HERE, 'node_modules/playwright-core/package.json'), 'utf8')).version;
    return have === want;
  } catch {
    return false;
  }
}

// npm install (a no-op when node_modules is current); offline, what is installed is used.
// PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: playwright-core downloads nothing anyway; belt and braces.
const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
  cwd: HERE, encoding: 'utf8', timeout: 180000,
  env: { ...process.env, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: '1', npm_config_update_notifier: 'false' },
});
if (npm.status !== 0) {
  const why = (npm.stderr || npm.error?.message || '').trim().split('\n').slice(-3).join('\n');
  if (!installed()) {
    const ping = spawnSync('npm', ['ping', '--loglevel=error'], { cwd: HERE, encoding: 'utf8', timeout: 30000 });
    if (ping.status !== 0) {
      console.log('SKIP: the npm registry cannot be reached and playwright-core is not installed in tests/web/node_modules;');
      console.log('      the browser tests did not run. (npm said: ' + why + ')');
      process.exit(77);
    }
    console.error('npm install failed although the registry answers:\n' + why);
    process.exit(1);
  }
  console.log('note: npm install failed (' + why + '); using the playwright-core already installed');
}

for (const [what, p, hint] of [[`Chromium`, chromium, 'packaging/install-deps installs Debian\'s chromium'],
  ['sipp', sipp, 'packaging/install-deps installs sip-tester'], ['sipbx', sipbx, 'build it first']]) {
  if (!fs.existsSync(p)) {
    console.error(`${what} not found at ${p}: ${hint}`);
    process.exit(1);
  }
}

fs.mkdirSync(artifacts, { recursive: true });
console.log(`screenshots: ${artifacts}`);
const run = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', path.join(HERE, 'dashboard.test.mjs')], {
  cwd: HERE, stdio: 'inherit', timeout: 600000,
  env: { ...process.env, SIPBX_BIN: path.resolve(sipbx), SIPP: sipp, CHROMIUM: chromium,
    SIPBX_WEB_ARTIFACTS: path.resolve(artifacts), SIPBX_WEB_ROOT: path.join(HERE, '../../web') },
});
process.exit(run.status === null ? 1 : run.status);
