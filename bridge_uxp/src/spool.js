"use strict";
/**
 * A result stream kept on the plugin's temporary disk until every byte has arrived.
 *
 * A 150 MP 16-bit result is 900 MB: more than UXP lets a plugin hold. It is spooled to
 * `plugin-temp:/` as it arrives and read back band by band while it is written into Photoshop,
 * which also guarantees that nothing is written into a layer before the whole result is here.
 * Uses UXP's `fs` module (open/read/write/close/unlink with ArrayBuffers), injected.
 */
class Spool {
  constructor(fs, path, fd, bytes) {
    this.fs = fs;
    this.path = path;
    this.fd = fd;
    this.bytes = bytes;
    this.written = 0;
  }

  /** Create (or truncate) the spool file for a stream of `bytes` bytes. */
  static async create(fs, path, bytes) {
    const fd = await fs.open(path, "w+");
    return new Spool(fs, path, fd, bytes);
  }

  get complete() {
    return this.written === this.bytes;
  }

  /** Store `data` at `offset` (chunks arrive in order, so offset is the current length). */
  async write(data, offset) {
    if (offset + data.length > this.bytes) throw new Error(`Spool ${this.path} would exceed ${this.bytes} bytes.`);
    const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
    const { bytesWritten } = await this.fs.write(this.fd, own.buffer, 0, own.byteLength, offset);
    if (bytesWritten !== data.length) throw new Error(`Could not write to ${this.path} (disk full?).`);
    this.written = Math.max(this.written, offset + data.length);
  }

  /** Read `length` bytes at `offset` into a fresh Uint8Array. */
  async read(offset, length) {
    const buffer = new ArrayBuffer(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.fs.read(this.fd, buffer, done, length - done, offset + done);
      if (!bytesRead) throw new Error(`${this.path} ended early at ${offset + done}.`);
      done += bytesRead;
    }
    return new Uint8Array(buffer);
  }

  /** Close the file but keep it (a later panel resumes the job and rewrites it). */
  async close() {
    if (this.fd !== null) {
      const fd = this.fd;
      this.fd = null;
      await this.fs.close(fd);
    }
  }

  async remove() {
    await this.close();
    try {
      await this.fs.unlink(this.path);
    } catch (_) {
      // already gone
    }
  }
}

module.exports = { Spool };
