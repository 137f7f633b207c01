"use strict";
/** Documents, selections and a wired JobRunner for tests (shipped code + fakes + real server). */
const { uxpWebSocketClass } = require("../fakes/uxp");

const WebSocket = uxpWebSocketClass();
const { FakePhotoshop } = require("../fakes/photoshop");
const { createLocalStorage } = require("../fakes/uxp");
const { createUxpFs } = require("../fakes/uxp_fs");
const { JobRunner } = require("../../src/job");

/** Deterministic pixel values spread over the whole native range of a depth. */
function pattern(depth) {
  return (x, y, c) => {
    let h = (x * 73856093) ^ (y * 19349663) ^ (c * 83492791);
    h = (h ^ (h >>> 13)) * 1274126177;
    h = (h ^ (h >>> 16)) >>> 0;
    if (depth === 8) return h & 255;
    if (depth === 16) return h % 32769;
    return (h % 100000) / 50000; // floats up to 2.0: 32-bit documents go above 1
  };
}

/** Elliptical selection with a feathered rim of `feather` pixels. */
function ellipseSelection(width, height, { cx, cy, rx, ry, feather = 8 }) {
  const mask = new Uint8Array(width * height);
  for (let y = 0; y < height; y++) {
    const dy = (y + 0.5 - cy) / ry;
    for (let x = 0; x < width; x++) {
      const dx = (x + 0.5 - cx) / rx;
      const r = Math.sqrt(dx * dx + dy * dy);
      const inside = (1 - r) * Math.min(rx, ry); // ≈ pixels inside the rim
      mask[y * width + x] = inside >= feather ? 255 : inside <= 0 ? 0 : Math.round((255 * inside) / feather);
    }
  }
  return mask;
}

function makeRunner({ WebSocketImpl = WebSocket, fake = new FakePhotoshop(), fs = createUxpFs(), storage = createLocalStorage(), tokens = {}, updates = [], reconnectForMs = 60000, bandBytes } = {}) {
  const runner = new JobRunner({
    ps: fake.module,
    fs,
    WebSocket: WebSocketImpl,
    storage,
    tokenFor: (url) => tokens[url] || null,
    onUpdate: (u) => updates.push(u),
    tempDir: "plugin-temp:",
    reconnectForMs,
    bandBytes,
  });
  return { runner, fake, fs, storage, updates };
}

module.exports = { pattern, ellipseSelection, makeRunner, WebSocket };
