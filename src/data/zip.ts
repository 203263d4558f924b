/** Zip archives, as numpy.savez writes them for .npz files. */
import { inflateRawSync } from 'node:zlib';
import { CompressError } from '../errors.js';
import { describeThrown, limit, overLimit } from '../limits.js';

/** Reads a zip archive's entries (stored or deflated; zip64 aware). Values are decompressed lazily. */
export function readZip(bytes: Uint8Array, file?: string): Map<string, () => Uint8Array> {
  const err = (m: string, offset?: number) => new CompressError('data', m, { file, offset });
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // Every offset comes from the file: reads past its end are errors at that offset, not RangeErrors.
  const inside = (o: number, n: number) => {
    if (!Number.isSafeInteger(o) || o < 0 || o + n > bytes.length) throw err(`truncated or malformed zip: a record at byte ${o} lies past the end of the ${bytes.length}-byte file`, o);
    return o;
  };
  const u16 = (o: number) => dv.getUint16(inside(o, 2), true);
  const u32 = (o: number) => dv.getUint32(inside(o, 4), true);
  const u64 = (o: number) => Number(dv.getBigUint64(inside(o, 8), true));
  let eocd = -1;
  for (let o = bytes.length - 22; o >= Math.max(0, bytes.length - 22 - 0xffff); o--) {
    if (u32(o) === 0x06054b50) {
      eocd = o;
      break;
    }
  }
  if (eocd < 0) throw err('not a zip archive (no end of central directory record): an .npz is written by numpy.savez');
  let entries = u16(eocd + 10);
  let cdOffset = u32(eocd + 16);
  if ((entries === 0xffff || cdOffset === 0xffffffff) && eocd >= 20 && u32(eocd - 20) === 0x07064b50) {
    const z64 = u64(eocd - 20 + 8);
    if (u32(z64) !== 0x06064b50) throw err('bad zip64 end of central directory record', z64);
    entries = u64(z64 + 32);
    cdOffset = u64(z64 + 48);
  }
  const out = new Map<string, () => Uint8Array>();
  let p = cdOffset;
  for (let e = 0; e < entries; e++) {
    if (p + 46 > bytes.length || u32(p) !== 0x02014b50) throw err('bad zip central directory entry', p);
    const flags = u16(p + 8);
    const method = u16(p + 10);
    let compSize = u32(p + 20);
    let size = u32(p + 24);
    const nameLen = u16(p + 28);
    const extraLen = u16(p + 30);
    const commentLen = u16(p + 32);
    let local = u32(p + 42);
    const name = new TextDecoder().decode(bytes.subarray(p + 46, p + 46 + nameLen));
    // zip64 extra field: the 64-bit values of whichever of the 32-bit fields are 0xFFFFFFFF, in this order.
    let x = p + 46 + nameLen;
    const xEnd = x + extraLen;
    while (x + 4 <= xEnd) {
      const id = u16(x);
      const len = u16(x + 2);
      if (id === 0x0001) {
        let f = x + 4;
        if (size === 0xffffffff) (size = u64(f)), (f += 8);
        if (compSize === 0xffffffff) (compSize = u64(f)), (f += 8);
        if (local === 0xffffffff) local = u64(f);
      }
      x += 4 + len;
    }
    p = xEnd + commentLen;
    if (flags & 1) throw err(`zip entry "${name}" is encrypted`);
    // Two entries of one name: which one numpy would read depends on the reader; refuse the ambiguity.
    if (out.has(name)) throw err(`zip entry "${name}" appears more than once`);
    out.set(name, () => {
      if (u32(local) !== 0x04034b50) throw err(`bad zip local header for "${name}"`, local);
      const start = local + 30 + u16(local + 26) + u16(local + 28);
      inside(start, compSize);
      const raw = bytes.subarray(start, start + compSize);
      if (method === 0) {
        if (size !== compSize) throw err(`stored zip entry "${name}" declares ${size} bytes but holds ${compSize}`, start);
        return raw;
      }
      if (method === 8) {
        // Declared sizes are checked before inflating, and inflating stops at the declared size: a zip
        // bomb (or an entry that lies about its size) costs at most what the limits allow.
        const maxBytes = limit('NPZ_ENTRY_BYTES');
        if (size > maxBytes) throw overLimit('data', 'NPZ_ENTRY_BYTES', `zip entry "${name}" declares ${size} bytes`, { file, offset: local });
        const ratio = limit('NPZ_RATIO');
        if (size > 1 << 20 && size > ratio * compSize) {
          throw overLimit('data', 'NPZ_RATIO', `zip entry "${name}" declares ${size} bytes from ${compSize} compressed (ratio ${Math.round(size / Math.max(1, compSize))})`, { file, offset: start });
        }
        let b: Buffer;
        try {
          b = inflateRawSync(raw, { maxOutputLength: Math.max(1, size) });
        } catch (e) {
          const tooBig = (e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError;
          throw err(`zip entry "${name}" ${tooBig ? `inflates to more than the ${size} bytes it declares` : `cannot be inflated: ${describeThrown(e)}`}`, start);
        }
        if (b.length !== size) throw err(`zip entry "${name}" inflates to ${b.length} bytes, expected ${size}`, start);
        return b;
      }
      throw err(`zip entry "${name}" uses compression method ${method}; only stored (0) and deflate (8) are supported`);
    });
  }
  return out;
}
