"use strict";
/** UXP's `fs` module (the calls the panel uses) held in memory, for the browser test. */
function createMemoryFs() {
  const files = new Map();
  const open = new Map();
  let next = 3;
  const needArrayBuffer = (b) => {
    if (Object.prototype.toString.call(b) !== "[object ArrayBuffer]") throw new TypeError("UXP fs expects an ArrayBuffer");
  };
  const file = (p) => {
    if (!/^plugin-temp:\//.test(p)) throw new Error(`fake fs: only plugin-temp:/ paths are modelled, got ${p}`);
    return p;
  };
  return {
    async open(p, flag = "r") {
      const name = file(p);
      if (flag.startsWith("w")) files.set(name, { bytes: new Uint8Array(0) });
      else if (!files.has(name)) throw new Error(`ENOENT: ${p}`);
      const fd = next++;
      open.set(fd, files.get(name));
      return fd;
    },
    async close(fd) {
      open.delete(fd);
    },
    async write(fd, buffer, offset = 0, length = buffer.byteLength - offset, position = 0) {
      needArrayBuffer(buffer);
      const f = open.get(fd);
      const end = position + length;
      if (end > f.bytes.length) {
        const grown = new Uint8Array(Math.max(end, f.bytes.length * 2));
        grown.set(f.bytes);
        f.bytes = grown;
        f.size = end;
      }
      f.size = Math.max(f.size || 0, end);
      f.bytes.set(new Uint8Array(buffer, offset, length), position);
      return { bytesWritten: length, buffer };
    },
    async read(fd, buffer, offset = 0, length = buffer.byteLength - offset, position = 0) {
      needArrayBuffer(buffer);
      const f = open.get(fd);
      const n = Math.max(0, Math.min(length, (f.size || 0) - position));
      new Uint8Array(buffer, offset, n).set(f.bytes.subarray(position, position + n));
      return { bytesRead: n, buffer };
    },
    async unlink(p) {
      files.delete(file(p));
    },
    files: () => Array.from(files.keys()),
  };
}

module.exports = { createMemoryFs };
