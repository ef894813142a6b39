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
