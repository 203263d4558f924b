/**
 * Writes dist/cli-bundle/: the command line (dist/cli/main.js) and what it imports, yaml included, bundled
 * by esbuild into a few files, one per lazily loaded part (the build command, each step, …). Node loads
 * the ~220 files of a build (ours, yaml's 72) one by one; bundled, a `build --no-cache` of a 113 MB model took 1.20 s
 * against 1.35 s (medians of 10 alternating pairs, 2-core VM). src/cli.ts runs the bundle when it is
 * there and dist/cli/main.js otherwise. Run by `npm run build`, after tsc and recipe-validator.mjs.
 *
 * Every `import.meta.url` in a bundled module becomes its own file's URL in dist/ (workers, the isolated
 * child, the recipe validator and package.json are found beside the modules, which stay in dist/ too).
 * The early hashes (src/cli/early-hash.ts) are an entry of the same bundle, so that they share the
 * pipeline's hash.ts. Packages with native code or their own files (onnxruntime, ajv) stay external.
 *
 *   node scripts/bundle-cli.mjs
 */
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = path.join(root, 'dist');
const outdir = path.join(dist, 'cli-bundle');

/** `import.meta.url` of a module of dist/, seen from a chunk in outdir. */
const ownUrl = {
  name: 'own-import-meta-url',
  setup(b) {
    b.onLoad({ filter: /\.js$/ }, async (args) => {
      if (!args.path.startsWith(dist + path.sep)) return undefined;
      const text = await readFile(args.path, 'utf8');
      const rel = path.relative(outdir, args.path).split(path.sep).join('/');
      return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(rel)}, import.meta.url).href`), loader: 'js' };
    });
  },
};

await rm(outdir, { recursive: true, force: true });
await build({
  entryPoints: { main: path.join(dist, 'cli', 'main.js'), 'early-hash': path.join(dist, 'cli', 'early-hash.js') },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  external: ['onnxruntime-node', 'onnxruntime-web', 'onnxruntime-common', 'ajv', 'ajv/*'],
  plugins: [ownUrl],
  legalComments: 'none',
  // yaml is CommonJS and requires Node's own modules ("process", "buffer") as it runs: give the chunks a
  // require (esbuild names none of the modules' own variables `require`).
  banner: { js: "import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" },
  logLevel: 'warning',
});
