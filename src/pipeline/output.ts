/**
 * A build's output as a file rather than a buffer held by the process.
 *
 * Once written (into the cache entry, or, without a cache, into a temp folder of this process), the
 * output is verified by onnxruntime from that path and its bytes are read only when someone asks for
 * them (the bundler plugin emitting an asset). So a build never holds the source, the output and
 * onnxruntime's copy of the output at once, and the CLI copies the file to its destination without
 * reading it into memory (copyFileSync lets the kernel copy, or clone, it).
 *
 * Temp files of a process go into one folder under os.tmpdir(), removed when the process exits; a file
 * whose results were all garbage-collected is removed earlier (a long-running dev server with the cache
 * off would otherwise fill the folder).
 */
import { createHash } from 'node:crypto';
import { closeSync, openSync, readSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CompressError } from '../errors.js';
import type { Encoded } from '../onnx/codec.js';
import { processTempDir, readFileBytes, writeChunksAtomic } from '../onnx/io.js';
import { readFullAt } from '../onnx/paths.js';

/** sha256 of an encoding, chunk by chunk (no joined copy). */
export function hashChunks(chunks: readonly Uint8Array[]): string {
  const h = createHash('sha256');
  for (const c of chunks) h.update(c);
  return h.digest('hex');
}

/** sha256 of a file in 1 MiB reads, or undefined if it cannot be read. */
export function hashFileStreamed(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const h = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      h.update(buf.subarray(0, n));
    }
    return h.digest('hex');
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Whether two files hold the same bytes, read side by side in 1 MiB chunks: a changed file differs in its
 * first chunks (no full read), and an unchanged one costs two reads of the page cache instead of a read
 * and a sha256 (a 378 MB output, both files cached: ~0.10 s against ~0.29 s). False when either cannot be read.
 */
export function sameBytes(a: string, b: string): boolean {
  let fa: number | undefined;
  let fb: number | undefined;
  try {
    fa = openSync(a, 'r');
    fb = openSync(b, 'r');
    const ba = Buffer.allocUnsafe(1 << 20);
    const bb = Buffer.allocUnsafe(1 << 20);
    for (let pos = 0; ; pos += ba.length) {
      const na = readFullAt(fa, ba, pos);
      const nb = readFullAt(fb, bb, pos);
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      if (na < ba.length) return true;
    }
  } catch {
    return false;
  } finally {
    if (fa !== undefined) closeSync(fa);
    if (fb !== undefined) closeSync(fb);
  }
}

const unlinkWhenCollected = new FinalizationRegistry<string>((file) => rmSync(file, { force: true }));

/** Where an output's bytes are: `read()` loads them (each call reads the file again: callers keep them if they need to). */
export class OutputFile {
  constructor(
    readonly file: string,
    readonly byteLength: number,
  ) {}

  read(): Uint8Array {
    const bytes = readFileBytes(this.file);
    if (bytes.byteLength !== this.byteLength) {
      throw new CompressError('io', `the output file changed size while in use (${bytes.byteLength} bytes, expected ${this.byteLength})`, { file: this.file });
    }
    return bytes;
  }

  /** An output in this process's temp folder, removed once no OutputFile refers to it (or at exit). */
  static temp(name: string, encoded: Encoded): OutputFile {
    const file = join(processTempDir(), `${name}.${process.hrtime.bigint().toString(36)}.onnx`);
    writeChunksAtomic(file, encoded);
    const out = new OutputFile(file, encoded.byteLength);
    unlinkWhenCollected.register(out, file);
    return out;
  }
}
