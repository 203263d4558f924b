/**
 * Leftover temp files of killed writers. Every temp file we write is named
 * `[.]<name>.<pid>.<random>.tmp` (src/onnx/io.ts tempName); a build removes the ones in its cache, temp
 * and output folders whose writer is gone (no process with that pid) or that are older than a day
 * (a pid can be reused). A live writer's temp file is never touched.
 */
import { readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';

const TEMP_FILE = /^\.?.+\.(\d+)\.[a-z0-9]+\.tmp$/;

/** Age after which a temp file is removed even when a process with its pid exists. */
export const STALE_TEMP_MS = 24 * 3600 * 1000;

function writerAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

/** Removes stale temp files directly in `dir` (not below it); returns how many bytes were freed. */
export function sweepStaleTemps(dir: string, now = Date.now(), maxAgeMs = STALE_TEMP_MS): number {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return 0; // no such folder yet
  }
  let freed = 0;
  for (const name of names) {
    const m = TEMP_FILE.exec(name);
    if (!m) continue;
    const file = path.join(dir, name);
    try {
      const st = statSync(file);
      if (!st.isFile()) continue;
      if (writerAlive(Number(m[1])) && now - st.mtimeMs < maxAgeMs) continue;
      rmSync(file, { force: true });
      freed += st.size;
    } catch {
      // raced with its writer or another sweeper
    }
  }
  return freed;
}

const swept = new Set<string>();

/** sweepStaleTemps once per folder per process (folders are swept when first used). */
export function sweepOnce(dir: string): void {
  const abs = path.resolve(dir);
  if (swept.has(abs)) return;
  swept.add(abs);
  sweepStaleTemps(abs);
}
