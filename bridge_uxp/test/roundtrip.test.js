"use strict";
/**
 * The shipped job pipeline against a real server (identity engine): selection in, new masked
 * layer and hidden seam-risk layer out, one history step, nothing left behind.
 */
const test = require("node:test");
const assert = require("node:assert/strict");
const { startServer, serverAvailable } = require("./helpers/server");
const { pattern, ellipseSelection, makeRunner } = require("./helpers/scene");
const { snapshotLayer, assertIdentityResult } = require("./helpers/verify");
const { FakePhotoshop } = require("./fakes/photoshop");

const skip = serverAvailable() ? false : "the Seamwise server (.venv and server/ at the repository root) is not available";
const PARAMS = { mode: "refine", strength: 0.3, steps: 2, seed: 7, strategy: "memory", prompt: "" };

let server;
test.before(async () => {
  if (!skip) server = await startServer();
});
test.after(async () => {
  if (server) await server.stop();
});

for (const depth of [8, 16, 32]) {
  test(`${depth}-bit selection round trip is exact inside the mask and untouched outside`, { skip }, async () => {
    const { runner, fake, fs, storage } = makeRunner();
    const doc = fake.addDocument({ width: 320, height: 240, depth, fill: pattern(depth), profile: "Adobe RGB (1998)" });
    const selection = ellipseSelection(320, 240, { cx: 150, cy: 110, rx: 90, ry: 60, feather: 10 });
    fake.setSelection(doc, selection);
    const source = doc.layers[0];
    const before = snapshotLayer(source);
    const outcome = await runner.start({ serverUrl: server.url, params: PARAMS, margin: 16 });
    assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
    const [, layer, seams] = doc.layers;
    const region = { left: 60 - 16, top: 50 - 16, right: 240 + 16, bottom: 170 + 16 };
    assertIdentityResult({ doc, source, before, layer, region, selection });
    assert.equal(seams.visible, false);
    assert.match(seams.name, /seam risk$/);
    assert.equal(doc.historyStates.length, 1, "one undo step");
    assert.deepEqual(fs.files(), [], "spools removed");
    assert.equal(storage.getItem("seamwise.activeJob"), null);
    fake.undo(doc);
    assert.deepEqual(doc.layers, [source]);
  });
}

test("a layer with transparency round-trips its alpha; no selection means the whole layer", { skip }, async () => {
  const { runner, fake } = makeRunner();
  const doc = fake.addDocument({ width: 200, height: 120, depth: 16, fill: pattern(16) });
  // A second, transparent layer with content in a rectangle, written through the fake's own API.
  await fake.module.core.executeAsModal(async () => {
    const layer = await doc.createLayer({ name: "patch" });
    const data = new Uint16Array(50 * 40 * 4).map((_, i) => (i * 977) % 65536);
    const img = await fake.module.imaging.createImageDataFromBuffer(data, { width: 50, height: 40, components: 4, chunky: true, colorSpace: "RGB", colorProfile: doc.profile, fullRange: true });
    await fake.module.imaging.putPixels({ documentID: doc.id, layerID: layer.id, imageData: img, targetBounds: { left: 30, top: 20 } });
    img.dispose();
  }, { commandName: "setup" });
  const patch = doc.layers[1];
  const before = patch.data.slice();
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS });
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  const result = doc.layers[2];
  assert.equal(result.userMask, null, "no selection, no mask");
  assert.deepEqual(result.boundsNoEffects, patch.boundsNoEffects);
  for (let y = 20; y < 60; y++) for (let x = 30; x < 80; x++) for (let c = 0; c < 4; c++) {
    const i = (y * 200 + x) * 4 + c;
    assert.equal(result.data[i], before[i]);
  }
});

test("upscale x2 opens a new document of twice the selection's size", { skip }, async () => {
  const { runner, fake } = makeRunner();
  const doc = fake.addDocument({ width: 160, height: 100, depth: 8, fill: pattern(8) });
  const sel = new Uint8Array(160 * 100);
  for (let y = 10; y < 50; y++) sel.fill(255, y * 160 + 20, y * 160 + 80);
  fake.setSelection(doc, sel);
  const outcome = await runner.start({ serverUrl: server.url, params: { ...PARAMS, mode: "upscale" } });
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  assert.equal(fake.documents.length, 2);
  const big = fake.activeDocument;
  assert.equal(big.width, 120);
  assert.equal(big.height, 80);
  assert.equal(big.depth, 8);
  assert.equal(big.profile, doc.profile);
  assert.equal(doc.layers.length, 1, "the source document is untouched");
  const layer = big.layers[1];
  assert.match(layer.name, /^Seamwise upscale x2 /);
  assert.deepEqual(layer.boundsNoEffects, { left: 0, top: 0, right: 120, bottom: 80, width: 120, height: 80 });
});

test("Greyscale and CMYK documents get a clear 'convert to RGB' message", { skip }, async () => {
  for (const mode of ["grayscaleMode", "CMYKColorMode"]) {
    const { runner, fake } = makeRunner();
    fake.addDocument({ width: 10, height: 10, mode });
    await assert.rejects(runner.start({ serverUrl: server.url, params: PARAMS }), /Convert it to RGB/);
  }
});

test("upload keeps at most `window` chunks unacknowledged and the socket buffer near one chunk", { skip }, async () => {
  const { decodeFrame } = require("../src/codec");
  const { WebSocket } = require("./helpers/scene");
  const seen = { outstanding: 0, maxOutstanding: 0, maxBuffered: 0, chunks: 0 };
  class CountingSocket extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.on("message", (data) => {
        const m = decodeFrame(data);
        if (m.type === "ack" && (m.stream === "image" || m.stream === "mask")) seen.outstanding--;
      });
    }
    send(bytes) {
      if (bytes.length > 65536 && decodeFrame(bytes).type === "chunk") {
        seen.chunks++;
        seen.outstanding++;
        seen.maxOutstanding = Math.max(seen.maxOutstanding, seen.outstanding);
        seen.maxBuffered = Math.max(seen.maxBuffered, this.bufferedAmount);
      }
      super.send(bytes);
    }
  }
  const { runner, fake } = makeRunner({ WebSocketImpl: CountingSocket });
  fake.addDocument({ width: 2000, height: 1500, depth: 16, fill: pattern(16) }); // 18 MB: 5 chunks
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS });
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  assert.ok(seen.chunks >= 5, `chunks sent: ${seen.chunks}`);
  assert.ok(seen.maxOutstanding <= 4, `unacknowledged chunks: ${seen.maxOutstanding}`);
  assert.ok(seen.maxBuffered <= 4 * 1024 * 1024 + 65536, `socket buffer: ${seen.maxBuffered}`);
});

test("the socket offers the seamwise.v1 subprotocol (UXP's WebSocket wants one) and the server echoes it", { skip }, async () => {
  const { Connection } = require("../src/connection");
  const { WebSocket } = require("./helpers/scene");
  const conn = new Connection({ serverUrl: server.url, WebSocket });
  const welcome = await conn.open();
  assert.equal(conn.socket.protocol, "seamwise.v1");
  assert.ok(welcome.capabilities.includes("preview"));
  assert.match(welcome.server, /^\d+\.\d+/);
  conn.close();
});
