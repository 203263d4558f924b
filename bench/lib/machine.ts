/**
 * What the benches ran on, and measuring a whole child process: wall time, CPU time and peak RSS
 * under GNU time (`/usr/bin/time -v`).
 *
 * Peak RSS is measured on a process that GNU time forks itself: a process started straight from a
 * big Node parent can inherit that parent's RSS high-water mark through fork + exec.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync, statfsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface MachineInfo {
  cpu: string;
  /** Logical CPUs (os.cpus()) and what Node may use (availableParallelism). */
  cores: number;
  parallelism: number;
  /** CPU flags that matter for ORT's int8 kernels. */
  simd: string[];
  memoryBytes: number;
  freeMemoryBytes: number;
  os: string;
  node: string;
  onnxruntimeNode: string;
  loadAverage: [number, number, number];
  /** Free bytes on the file system of os.tmpdir(). */
  tmpFreeBytes: number;
  date: string;
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

function cpuFlags(): string[] {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const flags = new Set(/^flags\s*:\s*(.*)$/m.exec(info)?.[1].split(/\s+/) ?? []);
    return ['avx2', 'avx512f', 'avx512_vnni', 'avx_vnni', 'amx_int8'].filter((f) => flags.has(f));
  } catch {
    return [];
  }
}

export function freeBytes(dir: string): number {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return NaN;
  }
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    parallelism: typeof os.availableParallelism === 'function' ? os.availableParallelism() : cpus.length,
    simd: cpuFlags(),
    memoryBytes: os.totalmem(),
    freeMemoryBytes: os.freemem(),
    os: `${os.type()} ${os.release()} ${os.arch()}`,
    node: process.version,
    onnxruntimeNode: packageVersion('onnxruntime-node'),
    loadAverage: os.loadavg() as [number, number, number],
    tmpFreeBytes: freeBytes(os.tmpdir()),
    date: new Date().toISOString(),
  };
}

export function loadAverage(): string {
  return os
    .loadavg()
    .map((l) => l.toFixed(2))
    .join(' / ');
}

// ------------------------------------------------------------------------------------------ GNU time

let gnuTime: string | undefined | null = null;

/** /usr/bin/time, installed with apt-get when missing and possible; undefined when unavailable. */
export function ensureGnuTime(): string | undefined {
  if (gnuTime !== null) return gnuTime;
  if (process.env.BENCH_NO_GNU_TIME === '1') return (gnuTime = undefined);
  if (!existsSync('/usr/bin/time')) {
    try {
      execFileSync('apt-get', ['install', '-y', 'time'], { stdio: 'ignore', timeout: 120_000 });
    } catch {
      /* not root, or no package index */
    }
  }
  return (gnuTime = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined);
}

export interface ProcessMeasure {
  /** Exit status (null when killed). */
  status: number | null;
  signal: string | null;
  timedOut: boolean;
  /** Wall time seen from here (includes process start). */
  wallMs: number;
  /** From GNU time; NaN without it. */
  peakRssBytes: number;
  userMs: number;
  sysMs: number;
  stdout: string;
  stderr: string;
}

export interface MeasureOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /** Measure under GNU time (default true when available). */
  gnuTime?: boolean;
  /** Called with each chunk of the child's stderr (progress), besides collecting it. */
  onStderr?: (chunk: string) => void;
}

/** Process groups of the measured children still running (each is started detached). */
const live = new Set<number>();

/** Kills every measured child still running (for a parent that is itself being stopped). */
export function killMeasured(): void {
  for (const pid of live) {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
  live.clear();
}

/**
 * Runs `argv` to completion (async, so a parent can keep its own timers), killing it (SIGKILL, whole
 * process group) after `timeoutMs`.
 */
export function measureProcess(argv: string[], opts: MeasureOptions = {}): Promise<ProcessMeasure> {
  const timeBin = opts.gnuTime === false ? undefined : ensureGnuTime();
  // GNU time writes its report to stderr after the child's own stderr.
  const cmd = timeBin ? [timeBin, '-v', ...argv] : argv;
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd[0], cmd.slice(1), { cwd: opts.cwd ?? ROOT, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    if (child.pid) live.add(child.pid);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
      opts.onStderr?.(c);
    });
    let timedOut = false;
    const timer =
      opts.timeoutMs !== undefined
        ? setTimeout(() => {
            timedOut = true;
            try {
              process.kill(-child.pid!, 'SIGKILL');
            } catch {
              child.kill('SIGKILL');
            }
          }, opts.timeoutMs)
        : undefined;
    child.on('error', (e) => {
      if (timer) clearTimeout(timer);
      if (child.pid) live.delete(child.pid);
      reject(e);
    });
    child.on('close', (status, signal) => {
      if (timer) clearTimeout(timer);
      if (child.pid) live.delete(child.pid);
      const wallMs = performance.now() - t0;
      let peakRssBytes = NaN;
      let userMs = NaN;
      let sysMs = NaN;
      let childStatus: number | null = status;
      if (timeBin) {
        const at = stderr.lastIndexOf('\tCommand being timed:');
        const report = at >= 0 ? stderr.slice(at) : '';
        if (at >= 0) stderr = stderr.slice(0, at).replace(/Command (exited with non-zero status|terminated by signal) \d+\n$/, '');
        const num = (re: RegExp) => Number(re.exec(report)?.[1] ?? NaN);
        peakRssBytes = num(/Maximum resident set size \(kbytes\): (\d+)/) * 1024;
        userMs = num(/User time \(seconds\): ([\d.]+)/) * 1000;
        sysMs = num(/System time \(seconds\): ([\d.]+)/) * 1000;
        const exit = /Exit status: (\d+)/.exec(report);
        if (exit && status === 0) childStatus = Number(exit[1]);
      }
      resolve({ status: childStatus, signal, timedOut, wallMs, peakRssBytes, userMs, sysMs, stdout, stderr });
    });
  });
}
