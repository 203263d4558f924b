/**
 * A minimal zip writer for .npz fixtures in tests and the fuzz corpus: entries stored or deflated, and
 * — to build hostile archives — declared sizes, CRCs or a ready-made (e.g. corrupt) body that lie.
 */
import { deflateRawSync } from 'node:zlib';

export interface ZipEntry {
  name: string;
  /** The entry's content (deflated here when `method` is 8, the default). */
  data: Uint8Array;
  /** 0 stored, 8 deflate; other values are written as given. */
  method?: number;
  /** The uncompressed size the headers declare (default: data's length). */
  declared?: number;
  crc?: number;
  /** The bytes stored for the entry instead of data's (deflated) bytes. */
  body?: Uint8Array;
}

export function zip(entries: ZipEntry[]): Uint8Array {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const method = e.method ?? 8;
    const body = Buffer.from(e.body ?? (method === 8 ? deflateRawSync(e.data) : e.data));
    const name = Buffer.from(e.name);
    const size = e.declared ?? e.data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(e.crc ?? 0, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size >>> 0, 22);
    local.writeUInt16LE(name.length, 26);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(method, 10);
    cd.writeUInt32LE(e.crc ?? 0, 16);
    cd.writeUInt32LE(body.length, 20);
    cd.writeUInt32LE(size >>> 0, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(offset, 42);
    locals.push(local, name, body);
    centrals.push(cd, name);
    offset += 30 + name.length + body.length;
  }
  const cdBytes = Buffer.concat(centrals);
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(entries.length, 8);
  eocd.writeUInt16LE(entries.length, 10);
  eocd.writeUInt32LE(cdBytes.length, 12);
  eocd.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cdBytes, eocd]);
}
