#!/usr/bin/env node
// `npm test` runs this first: the suite needs two Debian packages that npm cannot install —
// libonnx-testdata (the ONNX conformance models) and chromium (the browser end-to-end test). Missing
// ones are installed with apt-get when we are root; otherwise this fails with the command to run,
// because a test suite that silently skips what it cannot run proves nothing.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const NEEDS = [
  { pkg: 'libonnx-testdata', path: '/usr/share/libonnx-testdata/data', why: 'ONNX conformance models' },
  { pkg: 'chromium', path: '/usr/bin/chromium', why: 'browser end-to-end test' },
];

const missing = NEEDS.filter((n) => !existsSync(n.path));
if (missing.length === 0) process.exit(0);

const pkgs = missing.map((m) => m.pkg);
const list = missing.map((m) => `${m.pkg} (${m.why})`).join(', ');
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const hasApt = existsSync('/usr/bin/apt-get');
if (!isRoot || !hasApt) {
  console.error(`npm test needs ${list}.`);
  console.error(hasApt ? `Install them once: sudo apt-get install -y ${pkgs.join(' ')}` : 'Install them with your system package manager (Debian/Ubuntu names above).');
  process.exit(1);
}
console.log(`Installing ${list} with apt-get…`);
const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
const apt = (args) => execFileSync('apt-get', args, { stdio: 'inherit', env });
apt(['update', '-qq']);
apt(['install', '-y', '-qq', '--no-install-recommends', ...pkgs]);
