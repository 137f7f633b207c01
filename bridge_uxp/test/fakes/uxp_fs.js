"use strict";
/**
 * UXP's `fs` module (promise-based; `plugin-temp:/` paths; open/read/write/close/unlink with
 * ArrayBuffers) over real files in a temporary folder, for Node tests.
 */
const nodeFs = require("node:fs");
const path = require("node:path");
const os = require("node:os");

const handles = new Map();

/** UXP's fs module over a real temporary folder. Buffers must be ArrayBuffers, as in UXP. */
function createUxpFs(root = nodeFs.mkdtempSync(path.join(os.tmpdir(), "seamwise-uxp-"))) {
  const resolve = (p) => {
    const m = /^plugin-temp:\/?(.*)$/.exec(p);
    if (!m) throw new Error(`fake fs: only plugin-temp:/ paths are modelled, got ${p}`);
    const rel = path.normalize(m[1]);
    if (rel.startsWith("..")) throw new Error("path escapes the plugin folder");
    return path.join(root, rel);
  };
  const needArrayBuffer = (b) => {
    if (Object.prototype.toString.call(b) !== "[object ArrayBuffer]") throw new TypeError("UXP fs expects an ArrayBuffer");
  };
  return {
    root,
    async open(p, flag = "r") {
      return nodeFs.promises.open(resolve(p), flag).then((h) => {
        const fd = h.fd;
        handles.set(fd, h);
        return fd;
      });
    },
    async close(fd) {
      const h = handles.get(fd);
      handles.delete(fd);
      if (h) await h.close();
    },
    async write(fd, buffer, offset = 0, length = buffer.byteLength - offset, position = null) {
      needArrayBuffer(buffer);
      const { bytesWritten } = await handles.get(fd).write(new Uint8Array(buffer), offset, length, position);
      return { bytesWritten, buffer };
    },
    async read(fd, buffer, offset = 0, length = buffer.byteLength - offset, position = null) {
      needArrayBuffer(buffer);
      const { bytesRead } = await handles.get(fd).read(new Uint8Array(buffer), offset, length, position);
      return { bytesRead, buffer };
    },
    async unlink(p) {
      await nodeFs.promises.unlink(resolve(p));
    },
    files() {
      return nodeFs.readdirSync(root);
    },
  };
}

module.exports = { createUxpFs };
