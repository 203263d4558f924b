/**
 * What the two pools of child processes share (src/runtime/isolate.ts runs onnxruntime-node,
 * src/runtime/web.ts onnxruntime-web): where a child's entry file is, whether a child keeps the parent
 * alive, and how much memory it holds.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** The entry file `<name>.js` beside this module (`.ts` when running from sources, with tsx's loader). */
export function childEntry(name: string): { file: string; execArgv: string[] } {
  const here = fileURLToPath(import.meta.url);
  const ext = path.extname(here);
  const file = path.join(path.dirname(here), `${name}${ext}`);
  if (ext !== '.ts') return { file, execArgv: [] };
  // Running from sources (tests, tsx): the child needs a TypeScript loader too.
  const tsx = path.join(path.dirname(createRequire(import.meta.url).resolve('tsx/package.json')), 'dist', 'loader.mjs');
  return { file, execArgv: ['--import', pathToFileURL(tsx).href] };
}

/** Whether `child` (and its IPC channel) keeps the parent alive: only while it works for it. */
export function keepAlive(child: ChildProcess, on: boolean): void {
  const channel = child.channel as { ref?: () => void; unref?: () => void } | undefined;
  if (on) {
    child.ref();
    channel?.ref?.();
  } else {
    child.unref();
    channel?.unref?.();
  }
}

/** Resident memory of a process in bytes (Linux /proc), or undefined where that cannot be read. */
export function residentBytes(pid: number): number | undefined {
  try {
    return Number(readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]) * 4096;
  } catch {
    return undefined;
  }
}

/**
 * A child's environment: glibc's malloc backs its large blocks with transparent huge pages where the
 * kernel allows them on request (THP "madvise"). A child's work is loading a whole model into fresh
 * memory, and on virtual machines, where each 4 KiB page fault is expensive, that fault cost was most of
 * the load time (113 MB read into fresh memory: 0.51 s with 4 KiB pages, 0.12 s with huge pages; the web
 * check's read of a 28 MB model: 127 → 29 ms). A user's own GLIBC_TUNABLES setting wins. onnxruntime's
 * telemetry is off in children as in the command line (quietOnnxruntime).
 *
 * NODE_EXTRA_CA_CERTS is left out (`tls: true` keeps it): with it set, Node initializes OpenSSL and
 * parses its bundled root certificates and the named file's as it starts, whether or not the process
 * ever opens a TLS connection — 0.04 → 0.13 s for `node -e 0` with the system's 144 certificates on a
 * 2-core VM, paid by every process a build starts. The verification and web check children read files
 * and run models, nothing else: they never connect anywhere.
 */
export function childEnv(opts: { keepHeap?: boolean; tls?: boolean } = {}): NodeJS.ProcessEnv {
  const tunables = process.env.GLIBC_TUNABLES;
  const add = ['glibc.malloc.hugetlb=1', ...(opts.keepHeap ? KEEP_HEAP : [])].filter((t) => !tunables?.includes(t.slice(0, t.indexOf('='))));
  const { NODE_EXTRA_CA_CERTS, ...rest } = process.env;
  return {
    ...rest,
    ...(opts.tls && NODE_EXTRA_CA_CERTS !== undefined && { NODE_EXTRA_CA_CERTS }),
    ...(add.length && { GLIBC_TUNABLES: [...(tunables ? [tunables] : []), ...add].join(':') }),
    ORT_DISABLE_TELEMETRY: process.env.ORT_DISABLE_TELEMETRY ?? '1',
  };
}

/**
 * onnxruntime-node 1.30 on Linux starts Microsoft's usage telemetry in every process that creates a
 * session: it writes a device id and an event database under ~/.cache/Microsoft/DeveloperTools/, an empty
 * /tmp/mat-debug-<pid>.log, and uploads events (unless it sees CI, GITHUB_ACTIONS or TF_BUILD set). A
 * build tool's processes have no business doing that: the processes onnx-compress starts itself (the
 * command line, its children) run with ORT_DISABLE_TELEMETRY=1 unless the variable is set already (set
 * it to 0 to keep onnxruntime's default). A bundler's own process is the user's: the plugin leaves it.
 */
export function quietOnnxruntime(env: NodeJS.ProcessEnv = process.env): void {
  env.ORT_DISABLE_TELEMETRY ??= '1';
}

/**
 * `keepHeap`: malloc serves blocks up to 32 MiB from its heap (not from fresh mappings each time) and
 * keeps up to 256 MiB of freed heap instead of returning it. A session's memory then comes from memory
 * the child already faulted in (src/runtime/isolate-child.ts, prefault: at most 128 MiB) or used for an
 * earlier model; a child that lives on (a dev server's) holds no more than that once idle.
 */
const KEEP_HEAP = ['glibc.malloc.mmap_threshold=33554432', 'glibc.malloc.trim_threshold=268435456'];

/**
 * The most heap the verification child faults in ahead of its first model (isolate-child.ts `prefault`):
 * a build whose buffers are larger gives its memory back before verifying (pipeline/run.ts), for the
 * children to reuse.
 */
export const PREFAULT_MAX_BYTES = 128 * 2 ** 20;
