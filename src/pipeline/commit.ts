/**
 * Committing a build's files (model + manifest) together: both are written to temp files first, in a
 * temp folder outside the output folder (a deploy step must never ship a temp file), then renamed into
 * place one after the other. If a rename fails, the renames already done are rolled back to the files
 * they replaced, so the output folder holds both new files or neither (a full disk fails while writing
 * the temps, before anything in the output folder changed).
 */
import { copyFileSync, existsSync, linkSync, mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { CompressError } from '../errors.js';
import { tempName, writeChunksToTemp } from '../onnx/io.js';
import { defaultCacheDir } from './cache.js';
import { readWithStat } from './hash.js';
import { sweepOnce } from './temps.js';

/** The default cache's temp folder: <cache>/tmp, on the project's file system like the outputs usually are. */
export function defaultTempDir(cwd = process.cwd()): string {
  return path.join(defaultCacheDir(cwd), 'tmp');
}

/**
 * A file to commit: its bytes, or a file to copy (then `unchanged` says whether the destination already
 * holds it; `link`: the source is a private file nothing writes again, so a hard link may stand in for
 * the copy).
 */
export type PendingFile = { file: string; bytes: Uint8Array } | { file: string; copyFrom: string; unchanged: () => boolean; link?: boolean };

/** Whether `a` and `b` are on one file system (a rename between them works). */
function sameDevice(a: string, b: string): boolean {
  try {
    return statSync(a).dev === statSync(b).dev;
  } catch {
    return false;
  }
}

function unchanged(file: string, bytes: Uint8Array): boolean {
  const st = statSync(file, { throwIfNoEntry: false });
  if (!st?.isFile() || st.size !== bytes.byteLength) return false;
  const old = readWithStat(file);
  return !!old && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).equals(old.bytes);
}

function tryLink(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch {
    return false; // another file system, or links not allowed: copy
  }
}

const ioError = (e: unknown, file: string) =>
  e instanceof CompressError ? e : new CompressError('io', `cannot write: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { file });

/**
 * Writes `files` all-or-nothing. Files that already hold exactly these bytes are left alone (their mtime
 * too, so watchers see no change). `tmpDir` is used when it is on the same file system as a file's
 * folder; otherwise a hidden temp next to the file is used (and removed on failure).
 */
export function commitFiles(files: readonly PendingFile[], tmpDir: string): void {
  const todo = files.filter((f) => !('bytes' in f ? unchanged(f.file, f.bytes) : f.unchanged()));
  if (!todo.length) return;
  mkdirSync(tmpDir, { recursive: true });
  sweepOnce(tmpDir);
  const staged: { file: string; tmp: string; backup?: string; existed: boolean }[] = [];
  try {
    for (const f of todo) {
      mkdirSync(path.dirname(f.file), { recursive: true });
      const dir = sameDevice(tmpDir, path.dirname(f.file)) ? tmpDir : undefined;
      let tmp: string;
      if ('bytes' in f) tmp = writeChunksToTemp(f.file, { chunks: [f.bytes], byteLength: f.bytes.byteLength }, dir);
      else {
        tmp = tempName(f.file, dir); // a file copy: the bytes never enter memory
        try {
          // A link where allowed (no bytes written: a 28 MB copy cost ~0.1 s on a virtual machine).
          if (!f.link || !tryLink(f.copyFrom, tmp)) copyFileSync(f.copyFrom, tmp);
        } catch (e) {
          rmSync(tmp, { force: true });
          throw e;
        }
      }
      staged.push({ file: f.file, tmp, existed: existsSync(f.file) });
    }
    // A hard link keeps the replaced file's bytes for a rollback without copying them.
    for (const s of staged) {
      if (!s.existed) continue;
      const backup = tempName(s.file, path.dirname(s.tmp) === tmpDir ? tmpDir : undefined);
      try {
        linkSync(s.file, backup);
        s.backup = backup;
      } catch {
        // no backup: a rollback then removes the new file instead of restoring the old one
      }
    }
  } catch (e) {
    for (const s of staged) rmSync(s.tmp, { force: true });
    for (const s of staged) if (s.backup) rmSync(s.backup, { force: true });
    throw ioError(e, staged.at(-1)?.file ?? todo[0].file);
  }
  let done = 0;
  try {
    for (const s of staged) {
      renameSync(s.tmp, s.file);
      done++;
    }
  } catch (e) {
    for (const s of staged.slice(0, done)) {
      try {
        if (s.backup) renameSync(s.backup, s.file);
        else rmSync(s.file, { force: true });
      } catch {
        // best effort: the error below still tells the caller the pair is not committed
      }
    }
    for (const s of staged.slice(done)) rmSync(s.tmp, { force: true });
    throw ioError(e, staged[done]?.file ?? todo[0].file);
  } finally {
    for (const s of staged) if (s.backup) rmSync(s.backup, { force: true });
  }
}
