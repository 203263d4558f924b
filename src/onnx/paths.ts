/**
 * Containment of paths that come from untrusted input (a model's external-data `location`, a recipe's
 * paths): the string check of external.ts refuses `..` and absolute paths, but a plain name can still
 * be a symlink (or sit in a symlinked folder) pointing anywhere — the CVE-2024-27318 class. So the path
 * is resolved with realpath and must stay below the realpath of the folder it is relative to.
 *
 * Opening is done with O_NONBLOCK and checked with fstat on the same descriptor: a FIFO or a device
 * would otherwise block `open` (or the first read) forever.
 */
import { closeSync, constants, fstatSync, openSync, readSync, realpathSync, type Stats } from 'node:fs';
import path from 'node:path';
import { CompressError, type ErrorKind } from '../errors.js';

/**
 * Reads from `fd` at `position` into `into` until it is full or the file ends (a read may return less
 * than asked); answers the bytes read, short only at the end of the file. Callers decide what a short
 * read means (an error, or the end of a chunked read).
 */
export function readFullAt(fd: number, into: Uint8Array, position: number): number {
  let at = 0;
  while (at < into.length) {
    const n = readSync(fd, into, at, into.length - at, position + at);
    if (n === 0) break;
    at += n;
  }
  return at;
}

const errnoOf = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;

/** realpath, its failure (missing file, symlink loop, permission) as a CompressError naming the path. */
export function realPath(file: string, kind: ErrorKind = 'io', what = 'cannot open'): string {
  try {
    return realpathSync.native(file);
  } catch (e) {
    const code = errnoOf(e);
    const why = code === 'ELOOP' ? 'ELOOP (a symlink loop)' : code;
    throw new CompressError(kind, `${what}: ${why}`, { file });
  }
}

/** Whether `child` (a real path) is `root` (a real path) or below it. */
export function isInside(root: string, child: string): boolean {
  const rel = path.relative(root, child);
  return rel === '' || (!rel.startsWith('..' + path.sep) && rel !== '..' && !path.isAbsolute(rel));
}

/**
 * The real path of `dir/location`, refused unless it lies below the real path of `dir` or of one of
 * `allowed` (real paths too). `describe` names the path in the error ("external data location "w.bin"").
 */
export function resolveInside(
  dir: string,
  location: string,
  opts: { file?: string; describe: string; allowed?: readonly string[]; kind?: ErrorKind },
): string {
  const target = realPath(path.resolve(dir, location), 'io', `${opts.describe} cannot be opened`);
  const roots = [realPath(dir), ...(opts.allowed ?? [])];
  if (roots.some((r) => isInside(r, target))) return target;
  throw new CompressError(
    opts.kind ?? 'model',
    `${opts.describe} resolves to ${target}, outside ${roots[0]} (through a symlink); only files inside the model's folder are read`,
    { file: opts.file ?? path.resolve(dir, location) },
  );
}

/**
 * Opens a file for reading without blocking on FIFOs and devices; anything but a regular file is a
 * typed error naming it. Returns the descriptor and its stat (taken from the descriptor, so there is
 * no window between the check and the read).
 */
export function openRegularFile(file: string, kind: ErrorKind = 'io', what = 'the file'): { fd: number; stat: Stats } {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = errnoOf(e);
    throw new CompressError('io', `cannot open: ${code === 'ELOOP' ? 'ELOOP (a symlink loop)' : code}`, { file });
  }
  let stat: Stats;
  try {
    stat = fstatSync(fd);
  } catch (e) {
    closeSync(fd);
    throw new CompressError('io', `cannot stat: ${errnoOf(e)}`, { file });
  }
  if (!stat.isFile()) {
    closeSync(fd);
    throw new CompressError(kind, `${what} is not a regular file (found ${describeStat(stat)})`, { file });
  }
  return { fd, stat };
}

export function describeStat(s: Stats): string {
  if (s.isDirectory()) return 'a folder';
  if (s.isFIFO()) return 'a FIFO';
  if (s.isSocket()) return 'a socket';
  if (s.isCharacterDevice() || s.isBlockDevice()) return 'a device';
  return 'something that is not a regular file';
}

/** The real path a write to `file` lands on: its folder's symlinks resolved (as far as the folder exists). */
export function landingPath(file: string): string {
  const abs = path.resolve(file);
  const tail: string[] = [path.basename(abs)];
  let dir = path.dirname(abs);
  for (;;) {
    try {
      return path.join(realpathSync.native(dir), ...tail.reverse());
    } catch {
      const parent = path.dirname(dir);
      if (parent === dir) return abs;
      tail.push(path.basename(dir));
      dir = parent;
    }
  }
}
