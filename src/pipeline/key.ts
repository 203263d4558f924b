/**
 * The cache key of a build:
 *   sha256(tool version, source bytes, external data / data files / teacher bytes,
 *          normalized step config with every path replaced by its file's hash, evaluate spec, output name)
 * and the seed every random choice of the steps uses (from the step config, so equal recipes give equal outputs).
 */
import { statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { DataLocation, externalDataFile, externalRef } from '../onnx/external.js';
import { decodeModelFile } from '../onnx/codec.js';
import { readFileBytes } from '../onnx/io.js';
import { readModelLazy } from '../onnx/lazy.js';
import type { ModelProto } from '../onnx/types.js';
import { forEachTensor } from '../onnx/walk.js';
import { mapFilePathsAsync, normalizedStepConfig } from '../recipe/index.js';
import type { Build } from '../recipe/types.js';
import { toolVersion } from '../version.js';
import { hashFile, hashPath, sha256, type FileHash, type StatCache } from './hash.js';
import { searchKey } from './search/applies.js';

export interface KeyInfo {
  key: string;
  source: { sha256: string; bytes: number };
  /** External data files of the source (relative to its folder). */
  deps: string[];
  /** Seed for every random choice of the steps: from the step config, so equal recipes give equal outputs. */
  seed: number;
  /**
   * Set when the source's hash was not awaited (computeKey's `deferSource`): `key` and `source.sha256`
   * are then stand-ins made from the source's path and stat (unique to that file's state and the
   * recipe, good for sharing work within this process), and this resolves to the key with the content
   * hashes, which the manifest and the result carry.
   */
  final?: Promise<KeyInfo>;
}

export const toPosix = (p: string) => p.split(path.sep).join('/');

function stableStringify(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableStringify(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * From this size on, the source's external data files are found by a skim of its structure that leaves
 * tensor payloads on disk (src/onnx/lazy.ts), instead of a search of every byte for the "location" key
 * while hashing: the search cost 0.19 s of a 378 MB model's 0.49 s hash. Below it the search is the
 * cheaper (10.8 MB PP-OCR rec with 765 nodes: the skim took ~0.1 s, the search a few ms of the hash).
 */
const SKIM_FROM = 64 * 2 ** 20;

/** The external data files (relative to the model's folder) that `model`'s tensors reference. */
function referencedFiles(model: ModelProto, file: string, allowedDirs: readonly string[] = []): string[] {
  const deps = new Set<string>();
  forEachTensor(model, (t) => {
    if (t.dataLocation !== DataLocation.EXTERNAL || t.lazyFile) return; // lazyFile: a payload left in the model file itself
    const { location } = externalRef(t, file);
    externalDataFile(path.dirname(file), location, file, allowedDirs);
    deps.add(toPosix(path.normalize(location)));
  });
  return [...deps].sort();
}

/**
 * External data files of a large model, from a skim. A file the skim cannot read names no files here
 * (undefined): the read phase decodes it and reports what is wrong, where.
 */
function skimmedDeps(file: string, allowedDirs: readonly string[] = []): string[] | undefined {
  let model: ModelProto;
  try {
    model = readModelLazy(file);
  } catch {
    return undefined;
  }
  return referencedFiles(model, file, allowedDirs);
}

function statOf(file: string): Stats | undefined {
  try {
    return statSync(file);
  } catch {
    return undefined; // hashFile says what is wrong with it
  }
}

/**
 * The build's key. `meanwhile` is called when a large file is hashed on a worker thread (hash.ts): work
 * this thread can do while it waits (the pipeline loads the build's modules). A large source's external
 * data files are listed meanwhile too.
 *
 * `deferSource` (a build without a cache, where nothing is looked up by the key): a large source's hash,
 * and its external data files', are not awaited; the key comes with `final` (see KeyInfo). The build
 * then reads the source while the hash is taken on another thread (or handed over by the process that
 * relaunched this one): the 378 MB prune waited 0.35–0.45 s for it before it could start.
 */
export async function computeKey(build: Build, stats: StatCache, meanwhile?: () => void, opts: { deferSource?: boolean } = {}): Promise<KeyInfo> {
  const st = statOf(build.source);
  const skim = (st?.size ?? 0) >= SKIM_FROM;
  let skimmed: { deps?: string[]; error?: unknown } | undefined;
  let onWorker = meanwhile;
  if (skim)
    onWorker = () => {
      meanwhile?.();
      try {
        skimmed = { deps: skimmedDeps(build.source, build.externalDataDirs) };
      } catch (error) {
        skimmed = { error }; // thrown once the hash is in (a file the hash cannot read fails first)
      }
    };
  const hashing = hashFile(build.source, stats, { scanExternal: !skim, ...(onWorker && { onWorker }) });
  if (opts.deferSource && st && skim) {
    hashing.catch(() => {}); // awaited through `final`
    if (skimmed?.error) throw skimmed.error;
    const deps = skimmed?.deps ?? skimmedDeps(build.source, build.externalDataDirs) ?? [];
    const rest = await recipePart(build, stats);
    const standIn = { file: path.resolve(build.source), dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs };
    const final = hashing.then(async (src) => keyOf(src, await externalHashes(build, stats, deps), deps, rest));
    final.catch(() => {}); // awaited for the manifest; a failure then fails the build
    return {
      key: sha256(stableStringify({ format: 1, standIn, ...rest.payload })),
      source: { sha256: sha256(stableStringify({ standIn })), bytes: st.size },
      deps,
      seed: rest.seed,
      final,
    };
  }
  const src = await hashing;
  let deps = src.entry?.deps;
  if (!deps) {
    let found: string[] | undefined = [];
    if (skimmed?.error) throw skimmed.error;
    if (skim) found = skimmed ? skimmed.deps : skimmedDeps(build.source, build.externalDataDirs);
    else if (src.mayReferenceExternal) found = referencedFiles(decodeModelFile(readFileBytes(build.source), build.source), build.source, build.externalDataDirs);
    if (found) stats.setDeps(build.source, found);
    deps = found ?? [];
  }
  const external = await externalHashes(build, stats, deps);
  return keyOf(src, external, deps, await recipePart(build, stats));
}

/** The key's parts that come from the recipe (the files it names by their hashes), and the seed. */
async function recipePart(build: Build, stats: StatCache): Promise<{ payload: Record<string, unknown>; seed: number }> {
  const byHash = (p: string) => hashPath(p, stats).then((h) => `sha256:${h}`);
  // Only the recipe keys that name files are hashed (a node-name glob like "/encoder/*" is not a path).
  const config = stableStringify(await mapFilePathsAsync(normalizedStepConfig(build), byHash));
  const evaluate = build.evaluate ? stableStringify((await mapFilePathsAsync({ evaluate: build.evaluate }, byHash)).evaluate) : null;
  // A budget that drives the precision search picks the output, so it is part of the key then (only then:
  // other builds keep their keys, and their budgets are checked on every call). It names no files.
  const sk = searchKey(build);
  const search = sk ? stableStringify(sk) : undefined;
  const payload = {
    tool: toolVersion(),
    config,
    evaluate,
    search,
    output: build.output,
    // Only when off, so that every other build keeps its key.
    ...(build.webCheck === false && { webCheck: false }),
  };
  return { payload, seed: parseInt(sha256(config).slice(0, 8), 16) >>> 0 };
}

/** The source's external data files with their hashes. */
function externalHashes(build: Build, stats: StatCache, deps: string[]): Promise<string[][]> {
  const dir = path.dirname(build.source);
  // Checked on every build, not only when the deps were listed: a data file may since have become a symlink.
  return Promise.all(deps.map(async (d) => [d, (await hashFile(externalDataFile(dir, d, build.source, build.externalDataDirs), stats)).sha256]));
}

/** The key from the source's hash, its external data files' and the recipe's part. */
function keyOf(src: FileHash, external: string[][], deps: string[], rest: { payload: Record<string, unknown>; seed: number }): KeyInfo {
  const payload = stableStringify({ format: 1, source: src.sha256, external, ...rest.payload });
  return { key: sha256(payload), source: { sha256: src.sha256, bytes: src.bytes }, deps, seed: rest.seed };
}
