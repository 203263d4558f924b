/**
 * Outputs may never overwrite an input or each other. Two checks:
 * - `outputNameIssues` (at load, no --out needed): names with NUL or control characters, over-long
 *   names, and a model output that equals another build's manifest name (`<id>.manifest.json`) — the
 *   manifest written later would silently replace the model.
 * - `checkOutputTargets` (at build time, once the output folder is known): no output or manifest path
 *   may be a source, a teacher, a data file (or lie inside a data folder), or the recipe itself —
 *   `output: model.onnx` with `--out .` would otherwise overwrite the source model — and no output may
 *   be one of the report files (onnx-compress.json, onnx-compress-report.html) written after it.
 * Paths are compared after resolving symlinks of their folders (the output file itself is replaced by a
 * rename, so a symlink there is replaced, not followed).
 */
import { realpathSync } from 'node:fs';
import path from 'node:path';
import { CompressError } from '../errors.js';
import { isInside, landingPath } from '../onnx/paths.js';
import { filesOf } from './files.js';
import type { Build, Recipe, SourcePosition } from './types.js';

/** Longest output path (bytes of UTF-8) and longest single name in it; common file systems allow 255 per name. */
export const MAX_OUTPUT_PATH_BYTES = 1024;
export const MAX_OUTPUT_NAME_BYTES = 255;

export const manifestName = (b: Build) => `${b.id}.manifest.json`;

/** Files every build writes into the report folder (src/pipeline/report.ts): no output may be named so. */
export const AGGREGATE_FILE = 'onnx-compress.json';
export const REPORT_FILE = 'onnx-compress-report.html';

export interface OutputIssue {
  build: Build;
  /** Whether the issue is about the written `output` value (else the model/variant key, whose default name it is). */
  atOutput: boolean;
  message: string;
}

/** Problems with the output names of a recipe's builds, found from the recipe alone. */
export function outputNameIssues(builds: readonly Build[]): OutputIssue[] {
  const issues: OutputIssue[] = [];
  const manifests = new Map<string, Build>();
  for (const b of builds) manifests.set(manifestName(b).toLowerCase(), b);
  for (const b of builds) {
    const atOutput = b.positions.output !== undefined;
    // eslint-disable-next-line no-control-regex
    const control = /[\u0000-\u001f\u007f]/.exec(b.output);
    if (control) {
      const code = control[0].charCodeAt(0).toString(16).padStart(4, '0');
      issues.push({ build: b, atOutput, message: `output contains the control character U+${code}; file names cannot hold it` });
      continue;
    }
    const bytes = Buffer.byteLength(b.output);
    const longest = Math.max(...b.output.split('/').map((s) => Buffer.byteLength(s)));
    if (bytes > MAX_OUTPUT_PATH_BYTES || longest > MAX_OUTPUT_NAME_BYTES) {
      issues.push({
        build: b,
        atOutput,
        message: `output is too long (${bytes} bytes, a name of ${longest}); at most ${MAX_OUTPUT_PATH_BYTES} bytes and ${MAX_OUTPUT_NAME_BYTES} per name`,
      });
      continue;
    }
    const clash = manifests.get(b.output.toLowerCase());
    if (clash) {
      issues.push({
        build: b,
        atOutput,
        message: `output "${b.output}" is the manifest file of ${clash === b ? 'this build' : clash.positions[''].path} (written next to each output as <id>.manifest.json); choose another name`,
      });
    }
  }
  return issues;
}

const display = (file: string) => {
  const rel = path.relative(process.cwd(), file);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
};

const real = (p: string): string => {
  try {
    return realpathSync.native(p);
  } catch {
    return landingPath(p);
  }
};

/**
 * Refuses a build whose output or manifest in `outDir` would replace a file the recipe reads. `flag`
 * names where outDir came from (e.g. "--out") for the message.
 */
export function checkOutputTargets(recipe: Recipe, outDir: string, manifestDir = outDir, flag = 'the output folder'): void {
  // Every file a build reads (source, teacher, data files and folders: the step registry's file keys).
  const inputs: { path: string; what: string }[] = [{ path: real(recipe.file), what: 'the recipe' }];
  for (const b of recipe.builds) {
    for (const f of filesOf(b)) inputs.push({ path: real(f), what: f === b.source ? `the source of ${b.id}` : `${path.basename(f)}, which ${b.id} reads` });
  }
  const problems: string[] = [];
  let first: { build: Build; pos: SourcePosition } | undefined;
  // The report files are written after the models: an output of that name would be replaced by them.
  const reports = [AGGREGATE_FILE, REPORT_FILE].map((f) => landingPath(path.resolve(manifestDir, f)).toLowerCase());
  for (const b of recipe.builds) {
    const target = landingPath(path.resolve(outDir, b.output));
    if (reports.includes(target.toLowerCase())) {
      problems.push(`${b.id}: the output ${target} would be overwritten by the build's report file ${path.basename(target)}`);
      first ??= { build: b, pos: b.positions.output ?? b.positions[''] };
    }
  }
  for (const b of recipe.builds) {
    for (const [kind, dir, name] of [['output', outDir, b.output], ['manifest', manifestDir, manifestName(b)]] as const) {
      const target = landingPath(path.resolve(dir, name));
      const hit = inputs.find((i) => isInside(i.path, target)); // the file itself, or a file inside a data folder
      if (!hit) continue;
      problems.push(`${b.id}: the ${kind} ${target} would overwrite ${hit.what}${hit.path === target ? '' : ` (inside ${hit.path})`}`);
      first ??= { build: b, pos: b.positions.output ?? b.positions[''] };
    }
  }
  if (!first) return;
  throw new CompressError(
    'recipe',
    `${problems.join('; ')}; choose another output name or ${flag}`,
    { file: display(recipe.file), line: first.pos.line, column: first.pos.column },
  );
}
