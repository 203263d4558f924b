/**
 * The plugin's view of the recipes: which build an import means, and its compressed result.
 * Knows nothing of bundlers: hooks ask it for builds and results and turn its CompressErrors into
 * bundler errors. Compression itself (cache, in-flight de-duplication) is the pipeline's.
 */
import path from 'node:path';
import { CompressError } from '../errors.js';
import { compressBuild, type CompressResult, type PipelineEvent, type PipelineOptions } from '../pipeline.js';
import { defaultCacheDir } from '../pipeline/cache.js';
import { filesOf, loadRecipe, type Build, type Recipe } from '../recipe/index.js';
import { createLog, resolveOptions, type Log, type Options, type ResolvedOptions } from './options.js';
import { summaryLine } from '../pipeline/report.js';
import { isTerminal, progressLine, type ProgressLine } from './progress.js';

export class CompressedModels {
  options: ResolvedOptions;
  log: Log;
  private loading?: Promise<Recipe[]>;
  /** The recipe file of each build, for the pipeline (manifest paths and budget errors point into it). */
  private recipeOf = new WeakMap<Build, string>();
  /** This bundle's results by build id: one compression and one log line per build per bundle. */
  private results = new Map<string, Promise<CompressResult>>();

  /** The terminal's progress bar for long steps (none off a terminal or below logLevel info). */
  private bar: ProgressLine | undefined;

  constructor(private readonly userOptions: Options = {}) {
    this.options = resolveOptions(userOptions);
    this.log = this.withBar(createLog(this.options.logLevel));
  }

  /** Re-resolves relative paths against the bundler's root; `sink` routes log lines to the bundler's logger. */
  configure(root: string, sink?: Log): void {
    this.options = resolveOptions(this.userOptions, root);
    this.log = this.withBar(createLog(this.options.logLevel, sink));
    this.loading = undefined;
  }

  /** `log` that erases the progress bar before it writes a line. */
  private withBar(log: Log): Log {
    this.bar = this.options.logLevel === 'info' && isTerminal() ? (this.bar ?? progressLine()) : undefined;
    return (level, message) => {
      this.bar?.clear();
      log(level, message);
    };
  }

  /** Starts a bundle: recipes are re-read (cheap) and results re-collected (cache hits when nothing changed). */
  startBundle(): void {
    this.loading = undefined;
    this.results.clear();
  }

  recipes(): Promise<Recipe[]> {
    this.loading ??= Promise.all(this.options.recipes.map((file) => loadRecipe(file))).then((recipes) => {
      for (const r of recipes) for (const b of r.builds) this.recipeOf.set(b, r.file);
      return recipes;
    });
    return this.loading;
  }

  async builds(): Promise<Build[]> {
    return (await this.recipes()).flatMap((r) => r.builds);
  }

  async byId(id: string): Promise<Build> {
    const build = (await this.builds()).find((b) => b.id === id);
    if (!build) throw new CompressError('recipe', `no build "${id}" in ${this.recipeNames()}`);
    return build;
  }

  /** The build whose source is `file` (and variant `variant`); an error naming the file and the recipe when none is. */
  async find(file: string, variant?: string): Promise<Build> {
    const all = (await this.builds()).filter((b) => b.source === path.resolve(file));
    const build = all.find((b) => b.variant === variant);
    if (build) return build;
    const rel = this.relative(file);
    if (all.length === 0) throw new CompressError('recipe', `${rel} is imported with ?compress but no model in ${this.recipeNames()} has it as its source`);
    const known = all.map((b) => (b.variant ? `?compress=${b.variant}` : '?compress')).join(', ');
    throw new CompressError('recipe', `${rel}: no variant "${variant}" in ${this.recipeNames()} (it has ${known})`);
  }

  /** The compressed build, once per bundle; logs one summary line. */
  compress(build: Build): Promise<CompressResult> {
    let result = this.results.get(build.id);
    if (!result) {
      result = compressBuild(build, this.pipelineOptions(build));
      // One line per model that was compressed; a cache hit changes nothing the user needs to read.
      result.then((r) => r.cached || this.log('info', summaryLine(r)), () => {});
      this.results.set(build.id, result);
    }
    return result;
  }

  /** Settled results of this bundle so far (failed ones left out: their error is reported where they were awaited). */
  async bundleResults(): Promise<CompressResult[]> {
    const settled = await Promise.allSettled(this.results.values());
    return settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  }

  /** Builds compressed in this bundle, for a dev server to recompute after a change. */
  requestedIds(): string[] {
    return [...this.results.keys()];
  }

  /** Files whose change changes an output: the recipes, and every build's source and data files. */
  async inputs(): Promise<string[]> {
    const files = new Set(this.options.recipes);
    for (const build of await this.builds().catch(() => [])) watchFilesOf(build).forEach((f) => files.add(f));
    return [...files];
  }

  private pipelineOptions(build: Build): PipelineOptions {
    const { cacheDir, device, budget, root } = this.options;
    return {
      cacheDir: cacheDir === undefined ? defaultCacheDir(root) : cacheDir && path.resolve(root, cacheDir),
      device,
      budget,
      recipeFile: this.recipeOf.get(build),
      onEvent: eventLogger(this.log, this.bar),
    };
  }

  private recipeNames(): string {
    return this.options.recipes.map((r) => this.relative(r)).join(', ');
  }

  private relative(file: string): string {
    const rel = path.relative(this.options.root, file);
    return rel.startsWith('..') ? file : rel;
  }
}

/** A build's input files (what a watcher should follow). */
export function watchFilesOf(build: Build): string[] {
  return filesOf(build);
}

/**
 * The pipeline's events as build-log lines: warnings, and — on a terminal — a progress bar for a step
 * that runs over a second (progress.ts); elsewhere a line for a step still running after 5 s, then every
 * 5 s (distillation can take minutes), so short steps stay quiet. The one line per finished model is
 * summaryLine (sizes, accuracy, cache hit), logged where the result arrives; errors are reported by the
 * bundler where the result was awaited.
 */
export function eventLogger(log: Log, bar?: ProgressLine): (e: PipelineEvent) => void {
  const current = new Map<string, { step: string; since: number; logged: number }>();
  return (e) => {
    if (e.kind === 'warning') {
      bar?.clear();
      return log('warn', `${e.model}: ${e.message}`);
    }
    if (e.kind === 'model-done' || e.kind === 'error') {
      bar?.done(e.model);
      return void current.delete(e.model);
    }
    if (e.kind !== 'step-start' && e.kind !== 'step-progress') return;
    const now = Date.now();
    let s = current.get(e.model);
    if (!s || s.step !== e.step) current.set(e.model, (s = { step: e.step, since: now, logged: now }));
    if (bar) return bar.update(e.model, e.step, e.kind === 'step-progress' ? e.fraction : undefined);
    if (e.kind !== 'step-progress' || e.fraction <= 0 || e.fraction >= 1 || now - s.logged < 5000) return;
    s.logged = now;
    log('info', `${e.model}: ${e.step} ${Math.round(e.fraction * 100)}% (${((now - s.since) / 1000).toFixed(0)} s)`);
  };
}
