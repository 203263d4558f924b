/**
 * Protocol-buffer wire format, the parts ONNX uses: varints (int32/int64/uint64/enum), fixed32 (float),
 * fixed64 (double) and length-delimited fields (strings, bytes, messages, packed arrays).
 *
 * The reader never allocates from a length it has not checked against the end of its buffer, and
 * every failure is a CompressError('model') carrying the byte offset where it happened.
 * The writer appends small fields to a scratch buffer and large byte fields as views (no copy),
 * so encoding a 400 MB model costs a few MB besides the tensors themselves.
 */
import { CompressError } from '../errors.js';

export const WireType = { VARINT: 0, I64: 1, LEN: 2, I32: 5 } as const;

/** int64 values: a number when exactly representable, else a bigint (INT64_MAX in Slice ends). */
export type Int64 = number | bigint;

const TWO32 = 4294967296;

export class WireReader {
  pos: number;
  readonly buf: Uint8Array;
  readonly view: DataView;
  readonly file: string | undefined;
  constructor(buf: Uint8Array, file?: string) {
    this.buf = buf;
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.pos = 0;
    this.file = file;
  }

  fail(message: string, offset = this.pos): never {
    throw new CompressError('model', message, { file: this.file, offset });
  }

  /** Low 32 bits of a varint as an unsigned number; the high bits are read and dropped. */
  uint32(): number {
    const buf = this.buf;
    let pos = this.pos;
    if (pos >= buf.length) this.fail('truncated varint');
    let b = buf[pos++];
    if (b < 0x80) {
      this.pos = pos;
      return b;
    }
    let result = b & 0x7f;
    for (let shift = 7; shift < 70; shift += 7) {
      if (pos >= buf.length) this.fail('truncated varint', this.pos);
      b = buf[pos++];
      if (shift < 32) result += (b & 0x7f) * 2 ** shift;
      if (b < 0x80) {
        this.pos = pos;
        return result % TWO32;
      }
    }
    this.fail('varint longer than 10 bytes', this.pos);
  }

  int32(): number {
    return this.uint32() | 0;
  }

  /** A 64-bit varint, signed or unsigned, as a number when exact, else a bigint. */
  int64(signed = true): Int64 {
    const buf = this.buf;
    const start = this.pos;
    let pos = start;
    let lo = 0;
    let hi = 0;
    let shift = 0;
    for (;;) {
      if (pos >= buf.length) this.fail('truncated varint', start);
      if (pos - start >= 10) this.fail('varint longer than 10 bytes', start);
      const b = buf[pos++];
      const bits = b & 0x7f;
      if (shift < 28) lo += bits << shift;
      else if (shift === 28) {
        lo += (bits & 0x0f) * 2 ** 28;
        hi += bits >>> 4;
      } else hi += bits * 2 ** (shift - 32);
      shift += 7;
      if (b < 0x80) break;
    }
    this.pos = pos;
    hi = hi % TWO32;
    // Small values as small integers: `hi * TWO32 + lo` is a double even when it is 768, and dims read that
    // way made V8 compile the kernels' index arithmetic in doubles (int4 of 12 weights: 0.42 s vs 0.23 s).
    if (hi === 0 && lo < 0x40000000) return lo | 0;
    if (hi < 0x200000) return hi * TWO32 + lo; // < 2^53, positive either way
    const big = (BigInt(hi) << 32n) | BigInt(lo);
    const value = signed ? BigInt.asIntN(64, big) : big;
    return value >= -9007199254740991n && value <= 9007199254740991n ? Number(value) : value;
  }

  float(): number {
    if (this.pos + 4 > this.buf.length) this.fail('truncated fixed32');
    const v = this.view.getFloat32(this.pos, true);
    this.pos += 4;
    return v;
  }

  double(): number {
    if (this.pos + 8 > this.buf.length) this.fail('truncated fixed64');
    const v = this.view.getFloat64(this.pos, true);
    this.pos += 8;
    return v;
  }

  /** Reads a length prefix and returns the end offset of the field's payload, checked. */
  lengthEnd(limit: number): number {
    const at = this.pos;
    // All 64 bits: a length of 2^32 + n must fail here, not wrap around to n.
    const len = this.int64(false);
    const end = typeof len === 'number' ? this.pos + len : Infinity;
    if (end > limit) this.fail(`length ${len} runs past the end of the enclosing message (byte ${limit})`, at);
    return end;
  }

  /** Length-delimited payload as a view into the input (zero copy). */
  bytes(limit: number): Uint8Array {
    const end = this.lengthEnd(limit);
    const v = this.buf.subarray(this.pos, end);
    this.pos = end;
    return v;
  }

  string(limit: number): string {
    const end = this.lengthEnd(limit);
    const s = decodeUtf8(this.buf, this.pos, end);
    this.pos = end;
    return s;
  }

  /** Skips a field of the given wire type; returns nothing, fails on groups and invalid types. */
  skip(wireType: number, limit: number): void {
    switch (wireType) {
      case WireType.VARINT:
        this.int64(false);
        break;
      case WireType.I64:
        if (this.pos + 8 > limit) this.fail('truncated fixed64');
        this.pos += 8;
        break;
      case WireType.LEN:
        this.pos = this.lengthEnd(limit);
        break;
      case WireType.I32:
        if (this.pos + 4 > limit) this.fail('truncated fixed32');
        this.pos += 4;
        break;
      default:
        this.fail(`invalid wire type ${wireType}`);
    }
  }
}

const utf8 = new TextDecoder('utf-8');

function decodeUtf8(buf: Uint8Array, start: number, end: number): string {
  // Names in ONNX graphs are short and ASCII; a JS loop beats TextDecoder's call overhead for them.
  if (end - start < 48) {
    let s = '';
    for (let i = start; i < end; i++) {
      const c = buf[i];
      if (c >= 0x80) return utf8.decode(buf.subarray(start, end));
      s += String.fromCharCode(c);
    }
    return s;
  }
  return utf8.decode(buf.subarray(start, end));
}

/** Bytes a varint of v takes (v a non-negative integer or an int64 value, negatives take 10). */
export function varintSize(v: number): number {
  if (v < 0) return 10;
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  let n = 4;
  v = Math.floor(v / 0x10000000);
  while (v > 0) {
    n++;
    v = Math.floor(v / 128);
  }
  return n;
}

export function int64Size(v: Int64): number {
  if (typeof v === 'number') return varintSize(v);
  let u = BigInt.asUintN(64, v);
  let n = 1;
  while (u >= 0x80n) {
    u >>= 7n;
    n++;
  }
  return n;
}

export function stringSize(s: string): number {
  // Buffer.byteLength is native and fast; ASCII strings take one byte a character.
  return Buffer.byteLength(s, 'utf8');
}

/** Collects output as a list of chunks: a scratch buffer for small fields, views for large bytes. */
export class ChunkWriter {
  readonly chunks: Uint8Array[] = [];
  private buf: Buffer;
  private pos = 0;
  private start = 0;
  constructor(private readonly scratchSize = 1 << 16) {
    this.buf = Buffer.allocUnsafe(scratchSize);
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.flush();
    this.buf = Buffer.allocUnsafe(Math.max(this.scratchSize, n));
    this.pos = this.start = 0;
  }

  private flush(): void {
    if (this.pos > this.start) this.chunks.push(this.buf.subarray(this.start, this.pos));
    this.start = this.pos;
  }

  uint(v: number): void {
    this.ensure(10);
    const buf = this.buf;
    while (v >= 0x80) {
      buf[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    buf[this.pos++] = v;
  }

  int64(v: Int64): void {
    if (typeof v === 'number' && v >= 0) return this.uint(v);
    let u = BigInt.asUintN(64, BigInt(v));
    this.ensure(10);
    while (u >= 0x80n) {
      this.buf[this.pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.buf[this.pos++] = Number(u);
  }

  tag(fieldNo: number, wireType: number): void {
    this.uint(fieldNo * 8 + wireType);
  }

  float(v: number): void {
    this.ensure(4);
    this.buf.writeFloatLE(v, this.pos);
    this.pos += 4;
  }

  double(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  string(s: string, byteLength: number): void {
    this.ensure(byteLength);
    this.pos += this.buf.write(s, this.pos, 'utf8');
  }

  /** Appends bytes; large ones are kept as views so tensors are never copied. */
  bytes(b: Uint8Array): void {
    if (b.length >= 4096) {
      this.flush();
      this.chunks.push(b);
      return;
    }
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  finish(): Uint8Array[] {
    this.flush();
    return this.chunks;
  }
}
