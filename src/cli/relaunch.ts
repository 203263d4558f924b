/**
 * The command line starts itself again, once, with huge pages, when that pays for a second Node start.
 *
 * On a virtual machine (a CI runner), building a large model spends most of its time faulting in fresh
 * 4 KiB pages: reading, pruning or converting and writing a model touches several times its size in new
 * memory, and each first touch of a page traps to the hypervisor. glibc's malloc backs its large blocks
 * with transparent huge pages when asked (GLIBC_TUNABLES=glibc.malloc.hugetlb=1), but reads that setting
 * only when a process starts. Measured on a 2-core VM, whole `build --no-cache` processes with webCheck
 * off, with and without the tunable: magnitude prune of a 378 MB model 7.55 → 4.42 s (medians of 3);
 * `repack` of it 2.46 → 1.77 s (medians of 5); a second Node start costs ~0.12 s there. So the command
 * relaunches itself when
 *
 * - it is `build` or `repack` and the models it reads add up to RELAUNCH_MIN_BYTES or more (a build: the
 *   `source:` files its recipe names, from a quick scan of the recipe's text, not a parse: a miss only
 *   costs speed; a repack: its input model);
 * - the kernel gives huge pages on request (THP mode "madvise"; with "always" malloc gets them anyway,
 *   with "never" not at all), and the C library is glibc 2.35 or later (older ones and others ignore the
 *   tunable);
 * - GLIBC_TUNABLES does not set glibc.malloc.hugetlb already (a user's own setting wins, and the
 *   relaunched process finds its own and runs the command), and Node was not started to debug or
 *   profile this process (--inspect, --cpu-prof …).
 *
 * The relaunched process runs without NODE_EXTRA_CA_CERTS (see childEnv: ~0.09 s of a Node start where
 * it is set) unless the recipe names a JS or TS file: a data module is the user's code, which may fetch
 * its samples from a server the user's certificates are for. It shares stdin, stdout and stderr;
 * SIGINT, SIGTERM and SIGHUP sent to this one are passed on, and this one then exits as the child did
 * (its exit code, or the same signal). Bundler plugins run in the bundler's process, which cannot be
 * relaunched: see docs/facts.md. Meanwhile this process can work for the relaunched one (`handOver`: it
 * gets a pipe to the child's descriptor 3).
 */
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { limit } from '../limits.js';
import { childEnv } from '../runtime/child.js';
import { parseArgs } from './args.js';
import { build as buildSpec, repack as repackSpec } from './specs.js';

export const RELAUNCH_MIN_BYTES = 64 * 2 ** 20;

/** Names the relaunched process's descriptor on which the first process hands over work (src/cli/early-hash.ts). */
export const HAND_OVER_FD_ENV = 'ONNX_COMPRESS_HAND_OVER_FD';

/** What the relaunch decision reads from the machine (tests pass their own). */
export interface Machine {
  platform: NodeJS.Platform;
  env: NodeJS.ProcessEnv;
  /** Node's own flags for this process. */
  execArgv: readonly string[];
  cwd: string;
  /** A file's text, or undefined when it cannot be read. */
  read(file: string): string | undefined;
  /** A file's size, or undefined when it is not a file. */
  size(file: string): number | undefined;
  /** The running glibc's version ("2.36"), undefined under another C library. */
  glibc(): string | undefined;
}

const thisMachine = (): Machine => ({
  platform: process.platform,
  env: process.env,
  execArgv: process.execArgv,
  cwd: process.cwd(),
  read: (file) => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return undefined;
    }
  },
  size: (file) => {
    try {
      const st = statSync(file);
      return st.isFile() ? st.size : undefined;
    } catch {
      return undefined;
    }
  },
  // ~8 ms (a diagnostic report): asked last, only when everything else says relaunch.
  glibc: () => (process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined)?.header?.glibcVersionRuntime,
});

/** glibc.malloc.hugetlb exists from glibc 2.35 on; older ones ignore it. */
function hasHugetlbTunable(version: string | undefined): boolean {
  const [major, minor] = (version ?? '').split('.').map(Number);
  return major > 2 || (major === 2 && minor >= 35);
}

/** `source:` values in a recipe's text (block or flow style, plain or quoted); globs are left out. */
export function recipeSources(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:^|[\s{,])source\s*:[ \t]*(?:"([^"\n]*)"|'([^'\n]*)'|([^\s,{}#"'][^\s,{}#]*))/gm)) {
    const value = m[1] ?? m[2] ?? m[3];
    if (value && !/[*?[\]]/.test(value)) out.push(value);
  }
  return out;
}

/** Whether a recipe's text names a JavaScript or TypeScript file (a data module), from a scan as above. */
export const recipeNamesModule = (text: string): boolean => /\.[cm]?[jt]s(?=$|[\s"',}\]#])/im.test(text);

/**
 * The model files the command reads, when it is `build` (its recipe's `source:` files) or `repack` (its
 * input), with its parsed options and whether it may run the user's code (a recipe that names a module,
 * or one that could not be read); undefined for other commands and usage errors (the command itself
 * reports those).
 */
export function commandModels(argv: readonly string[], m: Machine = thisMachine()): { files: string[]; options: Record<string, unknown>; userCode: boolean } | undefined {
  const [command, ...rest] = argv.filter((a) => a !== '--debug');
  try {
    if (command === 'build') {
      const { positionals, options } = parseArgs(buildSpec, rest);
      const recipe = path.resolve(m.cwd, positionals[0] ?? 'compress.yaml');
      // Only a regular file within the recipe size limit is read (a FIFO would block, /dev/zero never end,
      // a 200 MB recipe cost 3 s and 400 MB): the command itself reports any other.
      const size = m.size(recipe);
      if (size === undefined || size > limit('RECIPE_BYTES')) return { files: [], options, userCode: true };
      const text = m.read(recipe);
      if (text === undefined) return { files: [], options, userCode: true };
      return { files: [...new Set(recipeSources(text).map((s) => path.resolve(path.dirname(recipe), s)))], options, userCode: recipeNamesModule(text) };
    }
    if (command === 'repack') {
      const { positionals, options } = parseArgs(repackSpec, rest);
      return { files: positionals[0] ? [path.resolve(m.cwd, positionals[0])] : [], options, userCode: false };
    }
  } catch {
    // a usage error: reported by the command itself
  }
  return undefined;
}

/** The files' sizes added up (a missing file or one that is not a regular file counts 0). */
export function filesBytes(files: readonly string[], m: Machine = thisMachine()): number {
  return files.reduce((sum, f) => sum + (m.size(f) ?? 0), 0);
}

/** Bytes of the models the command reads, when it is one that is worth relaunching for. */
export function modelBytes(argv: readonly string[], m: Machine, models = commandModels(argv, m)): number {
  return filesBytes(models?.files ?? [], m);
}

/**
 * Whether a relaunch with glibc.malloc.hugetlb=1 would give this command huge pages it has not got.
 * `models`: commandModels(argv, m), where the caller has it already.
 */
export function shouldRelaunch(argv: readonly string[], m: Machine = thisMachine(), models = commandModels(argv, m)): boolean {
  if (m.platform !== 'linux' || m.env.GLIBC_TUNABLES?.includes('glibc.malloc.hugetlb')) return false;
  // Someone debugging or profiling this process wants the work done in it.
  if (m.execArgv.some((a) => /^--(inspect|debug|cpu-prof|heap-prof|prof\b)/.test(a))) return false;
  if (!/\[madvise\]/.test(m.read('/sys/kernel/mm/transparent_hugepage/enabled') ?? '')) return false;
  return modelBytes(argv, m, models) >= RELAUNCH_MIN_BYTES && hasHugetlbTunable(m.glibc());
}

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * Runs the command in a relaunched process when shouldRelaunch says so, and answers its exit code
 * (a child ended by a signal ends this process with the same signal). Undefined: not relaunched (not
 * worth it, or the child could not be started), run the command here. `handOver` is called once the
 * child started, with a pipe to its descriptor 3 (named to it by HAND_OVER_FD_ENV). `script` (default:
 * this process's) and `machine` are for tests.
 */
export function relaunched(
  argv: readonly string[],
  opts: { script?: string; machine?: Machine; handOver?: (pipe: Writable) => void } = {},
): Promise<number | undefined> {
  const script = opts.script ?? process.argv[1];
  const machine = opts.machine ?? thisMachine();
  const models = commandModels(argv, machine); // the recipe is read once, for both decisions
  if (!script || !shouldRelaunch(argv, machine, models)) return Promise.resolve(undefined);
  return new Promise((resolve) => {
    const { handOver } = opts;
    const env = childEnv({ tls: models?.userCode ?? true });
    const child = spawn(process.execPath, [...process.execArgv, script, ...argv], {
      stdio: handOver ? ['inherit', 'inherit', 'inherit', 'pipe'] : 'inherit',
      env: handOver ? { ...env, [HAND_OVER_FD_ENV]: '3' } : env,
    });
    let started = false;
    const forward = (signal: NodeJS.Signals) => () => void child.kill(signal);
    const handlers = FORWARDED.map((s) => [s, forward(s)] as const);
    for (const [s, h] of handlers) process.on(s, h);
    child.on('spawn', () => {
      started = true;
      if (handOver && child.stdio[3]) handOver(child.stdio[3] as Writable);
    });
    child.on('error', () => {
      if (started) return; // 'exit' follows
      for (const [s, h] of handlers) process.off(s, h);
      resolve(undefined);
    });
    child.on('exit', (code, signal) => {
      for (const [s, h] of handlers) process.off(s, h);
      if (signal) {
        process.kill(process.pid, signal);
        // Still here: the signal is one this process ignores. Exit as a shell reports a signal.
        resolve(128 + (constants.signals[signal] ?? 0));
        return;
      }
      resolve(code ?? 1);
    });
  });
}
