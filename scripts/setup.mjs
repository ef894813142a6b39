#!/usr/bin/env node
// Makes a fresh clone runnable: installs dependencies (which builds the native engine through
// node-gyp) when they or the addon are missing, and compiles TypeScript for `npm start`.
// Plain JavaScript on purpose: it runs before anything is installed.
import { existsSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const run = (cmd) => execSync(cmd, { cwd: root, stdio: 'inherit' });
const needsInstall = !existsSync(join(root, 'node_modules', '.package-lock.json'))
  || !existsSync(join(root, 'node_modules', 'fastify'));
const wantsNative = (process.env.GRADSERVE_BACKEND ?? 'native') === 'native';
const addon = join(root, 'build', 'Release', 'gradserve.node');

if (needsInstall) run('npm ci --no-audit --no-fund');
else if (wantsNative && !existsSync(addon)) run('npm run build:native');
if (process.argv[2] === 'start') run('npm run build');
if (process.argv[2] === 'test') {
  ensureDebianPackages({
    'python3-prometheus-client': "/usr/bin/python3 -c 'import prometheus_client'",
    chromium: 'test -x /usr/bin/chromium',
    // examples/*.ipynb run under real Jupyter; the Fashion-MNIST one reads Debian's copy.
    'jupyter-nbconvert': 'test -x /usr/bin/jupyter-nbconvert',
    'python3-ipykernel': "/usr/bin/python3 -c 'import ipykernel'",
    'python3-nbclient': "/usr/bin/python3 -c 'import nbclient'",
    'python3-numpy': "/usr/bin/python3 -c 'import numpy'",
    'dataset-fashion-mnist': 'test -d /usr/share/datasets/fashion-mnist',
    // the Python client's install command is tested as the README gives it
    'python3-pip': '/usr/bin/python3 -m pip --version',
    'python3-setuptools': "/usr/bin/python3 -c 'import setuptools'",
    // autograd's transforms are checked against torch.autograd.functional
    'python3-torch': "/usr/bin/python3 -c 'import torch'",
  });
}

/**
 * Debian packages that tests use as real tools (the Prometheus text parser, a browser for the API
 * explorer, Jupyter for the example notebooks): installed when
 * missing and we may (root, with apt), so that `npm test` alone sets a fresh machine up.
 */
function ensureDebianPackages(wanted) {
  const missing = Object.entries(wanted).filter(([, probe]) => {
    try { execSync(probe, { stdio: 'ignore' }); return false; } catch { return true; }
  }).map(([pkg]) => pkg);
  if (missing.length === 0) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot || !existsSync('/usr/bin/apt-get')) {
    console.warn(`setup: the tests want the Debian packages ${missing.join(', ')}; install them (apt-get install ${missing.join(' ')})`);
    return;
  }
  try {
    run(`apt-get install -y -qq --no-install-recommends ${missing.join(' ')} >/dev/null || (apt-get update -qq && apt-get install -y -qq --no-install-recommends ${missing.join(' ')} >/dev/null)`);
  } catch {
    console.warn(`setup: could not install ${missing.join(', ')}; the tests that use them will say so`);
  }
}
