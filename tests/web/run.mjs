// ctest entry point of the browser tests:
//   node run.mjs --sipbx PATH [--sipp PATH] [--artifacts DIR] [--browser chromium|firefox] [--https]
//                [--file TEST.mjs]
// Installs the drivers into tests/web/node_modules (npm install; no browser is ever
// downloaded), then runs, with node's test runner, dashboard.test.mjs in Debian's
// /usr/bin/chromium (playwright-core) or firefox.test.mjs in Debian's /usr/bin/firefox-esr
// (puppeteer-core over WebDriver BiDi); with --https, against the dashboard served over HTTPS
// with the certificate sipbx generates. Exit status 77 (ctest: skipped) only when the
// driver is not installed and the npm registry cannot be reached, or (Firefox) when
// firefox-esr is not installed.

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
const firefox = process.env.FIREFOX || '/usr/bin/firefox-esr';

// What each browser run needs: its driver package, its test file and its executable.
const BROWSERS = {
  chromium: { driver: 'playwright-core', file: 'dashboard.test.mjs', exe: chromium, name: 'Chromium',
    hint: "packaging/install-deps installs Debian's chromium" },
  firefox: { driver: 'puppeteer-core', file: 'firefox.test.mjs', exe: firefox, name: 'Firefox ESR',
    hint: "packaging/install-deps installs Debian's firefox-esr" },
};
const browser = BROWSERS[opt('--browser', 'chromium')];
// --https: the same tests with the dashboard served over HTTPS (Chromium only).
const overHttps = args.includes('--https');
const testFile = opt('--file', browser && browser.file); // another test file for that browser

if (!sipbx || !browser) {
  console.error('usage: node run.mjs --sipbx PATH [--sipp PATH] [--artifacts DIR] [--browser chromium|firefox]');
  process.exit(2);
}
const driver = browser.driver;

function installed() {
  try {
    const want = JSON.parse(fs.readFileSync(path.join(HERE, 'package.json'), 'utf8')).devDependencies[driver];
    const have = JSON.parse(fs.readFileSync(path.join(HERE, `node_modules/${driver}/package.json`), 'utf8')).version;
    return have === want;
  } catch {
    return false;
  }
}

// npm install (a no-op when node_modules is current); offline, what is installed is used.
// PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD, PUPPETEER_SKIP_DOWNLOAD: the -core packages download
// nothing anyway; belt and braces.
const npm = spawnSync('npm', ['install', '--no-audit', '--no-fund', '--loglevel=error'], {
  cwd: HERE, encoding: 'utf8', timeout: 180000,
  env: { ...process.env, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: '1', PUPPETEER_SKIP_DOWNLOAD: '1',
    npm_config_update_notifier: 'false' },
});
if (npm.status !== 0) {
  const why = (npm.stderr || npm.error?.message || '').trim().split('\n').slice(-3).join('\n');
  if (!installed()) {
    const ping = spawnSync('npm', ['ping', '--loglevel=error'], { cwd: HERE, encoding: 'utf8', timeout: 30000 });
    if (ping.status !== 0) {
      console.log(`SKIP: the npm registry cannot be reached and ${driver} is not installed in tests/web/node_modules;`);
      console.log('      the browser tests did not run. (npm said: ' + why + ')');
      process.exit(77);
    }
    console.error('npm install failed although the registry answers:\n' + why);
    process.exit(1);
  }
  console.log(`note: npm install failed (${why}); using the ${driver} already installed`);
}

// Firefox ESR is newer to the test dependencies than Chromium: a machine set up before it
// skips the Firefox run, saying so, rather than failing it.
if (browser === BROWSERS.firefox && !fs.existsSync(browser.exe)) {
  console.log(`SKIP: Firefox ESR not found at ${browser.exe}; the Firefox browser tests did not run.`);
  console.log(`      ${browser.hint} (apt-get install --no-install-recommends firefox-esr).`);
  process.exit(77);
}
for (const [what, p, hint] of [[browser.name, browser.exe, browser.hint],
  ['sipp', sipp, 'packaging/install-deps installs sip-tester'], ['sipbx', sipbx, 'build it first']]) {
  if (!fs.existsSync(p)) {
    console.error(`${what} not found at ${p}: ${hint}`);
    process.exit(1);
  }
}

fs.mkdirSync(artifacts, { recursive: true });
console.log(`screenshots: ${artifacts}`);
const run = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', path.join(HERE, testFile)], {
  cwd: HERE, stdio: 'inherit', timeout: 600000,
  env: { ...process.env, SIPBX_BIN: path.resolve(sipbx), SIPP: sipp, CHROMIUM: chromium, FIREFOX: firefox,
    SIPBX_WEB_ARTIFACTS: path.resolve(artifacts), SIPBX_WEB_ROOT: path.join(HERE, '../../web'),
    SIPBX_WEB_HTTPS: overHttps ? '1' : '' },
});
process.exit(run.status === null ? 1 : run.status);
