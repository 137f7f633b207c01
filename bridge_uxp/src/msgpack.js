"use strict";
/**
 * The MessagePack subset the protocol uses, with a UTF-8 codec of its own.
 *
 * UXP has no TextEncoder or TextDecoder, and @msgpack/msgpack 3.x constructs both when its module
 * loads, which left the panel blank inside Photoshop. This module needs nothing beyond ECMAScript:
 * nil, booleans, integers (exact up to 2^53), float64, str, bin (Uint8Array), arrays and maps with
 * string keys. Extension types are refused (the protocol sends none).
 */

/** UTF-8 bytes of a string; lone surrogates become U+FFFD, as TextEncoder does. */
function utf8Encode(text) {
  const out = [];
  for (let i = 0; i < text.length; i++) {
    let code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const low = text.charCodeAt(i + 1);
      if (low >= 0xdc00 && low <= 0xdfff) {
        code = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        i++;
      }
    }
    if (code >= 0xd800 && code <= 0xdfff) code = 0xfffd;
    if (code < 0x80) out.push(code);
    else if (code < 0x800) out.push(0xc0 | (code >> 6), 0x80 | (code & 63));
    else if (code < 0x10000) out.push(0xe0 | (code >> 12), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
    else out.push(0xf0 | (code >> 18), 0x80 | ((code >> 12) & 63), 0x80 | ((code >> 6) & 63), 0x80 | (code & 63));
  }
  return Uint8Array.from(out);
}

/** The string in UTF-8 `bytes[start, end)`; malformed sequences become U+FFFD. */
function utf8Decode(bytes, start = 0, end = bytes.length) {
  let out = "";
  let i = start;
  while (i < end) {
    const b = bytes[i];
    let code = 0xfffd;
    let size = 1;
    const cont = (k) => i + k < end && (bytes[i + k] & 0xc0) === 0x80;
    if (b < 0x80) code = b;
    else if (b >= 0xc2 && b < 0xe0 && cont(1)) {
      code = ((b & 31) << 6) | (bytes[i + 1] & 63);
      size = 2;
    } else if (b >= 0xe0 && b < 0xf0 && cont(1) && cont(2)) {
      const c = ((b & 15) << 12) | ((bytes[i + 1] & 63) << 6) | (bytes[i + 2] & 63);
      if (c >= 0x800 && (c < 0xd800 || c > 0xdfff)) {
        code = c;
        size = 3;
      }
    } else if (b >= 0xf0 && b < 0xf5 && cont(1) && cont(2) && cont(3)) {
      const c = ((b & 7) << 18) | ((bytes[i + 1] & 63) << 12) | ((bytes[i + 2] & 63) << 6) | (bytes[i + 3] & 63);
      if (c >= 0x10000 && c <= 0x10ffff) {
        code = c;
        size = 4;
      }
    }
    out += code > 0xffff ? String.fromCharCode(0xd800 + ((code - 0x10000) >> 10), 0xdc00 + ((code - 0x10000) & 1023)) : String.fromCharCode(code);
    i += size;
  }
  return out;
}

/** A growable byte buffer with big-endian writers. */
class Writer {
  constructor() {
    this.bytes = new Uint8Array(256);
    this.view = new DataView(this.bytes.buffer);
    this.length = 0;
  }

  reserve(n) {
    if (this.length + n <= this.bytes.length) return;
    let size = this.bytes.length * 2;
    while (size < this.length + n) size *= 2;
    const bigger = new Uint8Array(size);
    bigger.set(this.bytes.subarray(0, this.length));
    this.bytes = bigger;
    this.view = new DataView(bigger.buffer);
  }

  u8(v) { this.reserve(1); this.bytes[this.length++] = v; }
  u16(v) { this.reserve(2); this.view.setUint16(this.length, v); this.length += 2; }
  u32(v) { this.reserve(4); this.view.setUint32(this.length, v); this.length += 4; }
  f64(v) { this.reserve(8); this.view.setFloat64(this.length, v); this.length += 8; }
  raw(bytes) { this.reserve(bytes.length); this.bytes.set(bytes, this.length); this.length += bytes.length; }
  /** 64-bit integer from a JS number (exact up to 2^53). */
  i64(v) {
    const high = Math.floor(v / 4294967296);
    this.u32(high >>> 0);
    this.u32((v - high * 4294967296) >>> 0);
  }
}

function encodeInteger(w, v) {
  if (v >= 0) {
    if (v < 128) w.u8(v);
    else if (v < 256) { w.u8(0xcc); w.u8(v); }
    else if (v < 65536) { w.u8(0xcd); w.u16(v); }
    else if (v < 4294967296) { w.u8(0xce); w.u32(v); }
    else { w.u8(0xcf); w.i64(v); }
  } else if (v >= -32) w.u8(v & 0xff);
  else if (v >= -128) { w.u8(0xd0); w.u8(v & 0xff); }
  else if (v >= -32768) { w.u8(0xd1); w.u16(v & 0xffff); }
  else if (v >= -2147483648) { w.u8(0xd2); w.u32(v >>> 0); }
  else { w.u8(0xd3); w.i64(v); }
}

function encodeLength(w, n, fix, fixMax, codes) {
  if (fix !== null && n <= fixMax) w.u8(fix | n);
  else if (codes[0] !== null && n < 256) { w.u8(codes[0]); w.u8(n); }
  else if (n < 65536) { w.u8(codes[1]); w.u16(n); }
  else { w.u8(codes[2]); w.u32(n); }
}

function encodeValue(w, value) {
  if (value === null || value === undefined) w.u8(0xc0);
  else if (value === false) w.u8(0xc2);
  else if (value === true) w.u8(0xc3);
  else if (typeof value === "number") {
    if (Number.isSafeInteger(value)) encodeInteger(w, value);
    else { w.u8(0xcb); w.f64(value); }
  } else if (typeof value === "string") {
    const bytes = utf8Encode(value);
    encodeLength(w, bytes.length, 0xa0, 31, [0xd9, 0xda, 0xdb]);
    w.raw(bytes);
  } else if (ArrayBuffer.isView(value) || Object.prototype.toString.call(value) === "[object ArrayBuffer]") {
    // bytes, whichever realm made them (a typed array of any kind travels as its raw bytes)
    const bytes = ArrayBuffer.isView(value) ? new Uint8Array(value.buffer, value.byteOffset, value.byteLength) : new Uint8Array(value);
    encodeLength(w, bytes.length, null, 0, [0xc4, 0xc5, 0xc6]);
    w.raw(bytes);
  } else if (Array.isArray(value)) {
    encodeLength(w, value.length, 0x90, 15, [null, 0xdc, 0xdd]);
    for (const item of value) encodeValue(w, item);
  } else if (typeof value === "object") {
    // undefined fields are left out, so optional fields stay optional
    const keys = Object.keys(value).filter((k) => value[k] !== undefined);
    encodeLength(w, keys.length, 0x80, 15, [null, 0xde, 0xdf]);
    for (const key of keys) {
      encodeValue(w, key);
      encodeValue(w, value[key]);
    }
  } else {
    throw new TypeError(`Cannot encode a ${typeof value} as MessagePack.`);
  }
}

/** MessagePack bytes of `value`. */
function encode(value) {
  const w = new Writer();
  encodeValue(w, value);
  return w.bytes.slice(0, w.length);
}

/** Reads values from `bytes`; bin values are views into it, not copies. */
class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }

  need(n) {
    if (this.pos + n > this.bytes.length) throw new RangeError("MessagePack data ends too early.");
    const at = this.pos;
    this.pos += n;
    return at;
  }

  u8() { return this.bytes[this.need(1)]; }
  u16() { return this.view.getUint16(this.need(2)); }
  u32() { return this.view.getUint32(this.need(4)); }
  i64(signed) {
    const at = this.need(8);
    const high = signed ? this.view.getInt32(at) : this.view.getUint32(at);
    return high * 4294967296 + this.view.getUint32(at + 4);
  }

  str(n) { const at = this.need(n); return utf8Decode(this.bytes, at, at + n); }
  bin(n) { const at = this.need(n); return this.bytes.subarray(at, at + n); }
  array(n) { const out = new Array(n); for (let i = 0; i < n; i++) out[i] = this.value(); return out; }
  map(n) {
    const out = {};
    for (let i = 0; i < n; i++) {
      const key = this.value();
      if (typeof key !== "string" && typeof key !== "number") throw new TypeError("MessagePack map keys must be strings.");
      out[key] = this.value();
    }
    return out;
  }

  value() {
    const t = this.u8();
    if (t < 0x80) return t;
    if (t < 0x90) return this.map(t & 15);
    if (t < 0xa0) return this.array(t & 15);
    if (t < 0xc0) return this.str(t & 31);
    if (t >= 0xe0) return t - 256;
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return this.bin(this.u8());
      case 0xc5: return this.bin(this.u16());
      case 0xc6: return this.bin(this.u32());
      case 0xca: return this.view.getFloat32(this.need(4));
      case 0xcb: return this.view.getFloat64(this.need(8));
      case 0xcc: return this.u8();
      case 0xcd: return this.u16();
      case 0xce: return this.u32();
      case 0xcf: return this.i64(false);
      case 0xd0: return this.view.getInt8(this.need(1));
      case 0xd1: return this.view.getInt16(this.need(2));
      case 0xd2: return this.view.getInt32(this.need(4));
      case 0xd3: return this.i64(true);
      case 0xd9: return this.str(this.u8());
      case 0xda: return this.str(this.u16());
      case 0xdb: return this.str(this.u32());
      case 0xdc: return this.array(this.u16());
      case 0xdd: return this.array(this.u32());
      case 0xde: return this.map(this.u16());
      case 0xdf: return this.map(this.u32());
      default: throw new TypeError(`Unsupported MessagePack type 0x${t.toString(16)}.`);
    }
  }
}

/** The one value in `bytes` (a Uint8Array); trailing bytes are an error. */
function decode(bytes) {
  const reader = new Reader(bytes);
  const value = reader.value();
  if (reader.pos !== bytes.length) throw new RangeError("Extra bytes after the MessagePack value.");
  return value;
}

module.exports = { encode, decode, utf8Encode, utf8Decode };
