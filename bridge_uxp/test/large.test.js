"use strict";
/**
 * A 24 MP 16-bit selection through the whole pipeline with the real server: bit-exact inside the
 * mask, untouched outside, and never more than a band of image data alive in the plugin.
 * 24 MP × 3 channels × 2 bytes = 144 MB per full buffer; the panel must never build one.
 */
const test = require("node:test");
const assert = require("node:assert/strict");
const { startServer, serverAvailable } = require("./helpers/server");
const { pattern, ellipseSelection, makeRunner } = require("./helpers/scene");
const { snapshotLayer, assertIdentityResult } = require("./helpers/verify");
const { BAND_BYTES } = require("../src/photoshop_io");

const skip = serverAvailable() ? false : "the Seamwise server (.venv and server/ at the repository root) is not available";

test("24 MP 16-bit selection round trip: exact inside the mask, untouched outside, bounded memory", { skip, timeout: 180000 }, async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const width = 6000;
  const height = 4000;
  const { runner, fake, fs } = makeRunner();
  const doc = fake.addDocument({ width, height, depth: 16, fill: pattern(16), profile: "ProPhoto RGB" });
  const selection = ellipseSelection(width, height, { cx: 3000, cy: 2000, rx: 2990, ry: 1990, feather: 40 });
  fake.setSelection(doc, selection);
  const source = doc.layers[0];
  const before = snapshotLayer(source);
  const started = Date.now();
  const outcome = await runner.start({ serverUrl: server.url, params: { mode: "refine", strength: 0.3, steps: 1, seed: 5, strategy: "memory", prompt: "" } });
  const seconds = (Date.now() - started) / 1000;
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  const region = { left: 0, top: 0, right: width, bottom: height };
  const inside = assertIdentityResult({ doc, source, before, layer: doc.layers[1], region, selection });
  assert.ok(inside > 18e6, `selected pixels ${inside}`);
  // Image data alive at once stayed at about one band (plus its conversion), far from 144 MB.
  assert.ok(fake.memory.peak <= 2 * BAND_BYTES + 1024 * 1024, `peak ImageData ${fake.memory.peak} bytes`);
  assert.equal(fake.memory.live, 0, "every ImageData disposed");
  assert.ok(fake.calls.getPixels >= 9 && fake.calls.putPixels >= 18, "read and written in bands");
  assert.deepEqual(fs.files(), []);
  t.diagnostic(`24 MP 16-bit round trip: ${seconds.toFixed(1)} s, peak ImageData ${(fake.memory.peak / 1048576).toFixed(1)} MiB`);
});
