// Builds dist/: the module as one ES module (dist/credbroker.js) and the demo
// page (dist/demo/: index.html, style.css, app.js with the module and the S3
// client bundled in). Needs nothing but node_modules: no network, and the
// same sources give the same bytes.
//
//   node build.mjs [outdir]

import * as esbuild from 'esbuild';
import { copyFile, mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

/** @param {string} [outdir] relative to this folder, or absolute */
export async function build(outdir = 'dist') {
  const out = path.resolve(here, outdir);
  await rm(out, { recursive: true, force: true });
  await mkdir(path.join(out, 'demo'), { recursive: true });
  /** @type {import('esbuild').BuildOptions} */
  const common = {
    absWorkingDir: here,
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    charset: 'utf8',
    logLevel: 'warning',
  };
  await esbuild.build({ ...common, entryPoints: ['src/index.js'], outfile: path.join(out, 'credbroker.js') });
  await esbuild.build({
    ...common,
    entryPoints: ['demo/app.js'],
    outfile: path.join(out, 'demo', 'app.js'),
    minify: true,
  });
  for (const f of ['index.html', 'style.css']) await copyFile(path.join(here, 'demo', f), path.join(out, 'demo', f));
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = await build(process.argv[2]);
  console.log(`built ${path.relative(process.cwd(), out) || '.'}`);
}
