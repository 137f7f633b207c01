"use strict";
const test = require("node:test");
const assert = require("node:assert/strict");
const { startServer, serverAvailable } = require("./helpers/server");
const { pattern, ellipseSelection, makeRunner } = require("./helpers/scene");

const skip = serverAvailable() ? false : "the Seamwise server (../.venv, ../server) is not available";

test("8-bit selection round trip places a masked layer and a hidden seam layer", { skip }, async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const { runner, fake, fs, storage } = makeRunner();
  const doc = fake.addDocument({ width: 300, height: 200, depth: 8, fill: pattern(8) });
  fake.setSelection(doc, ellipseSelection(300, 200, { cx: 150, cy: 100, rx: 80, ry: 50 }));
  const outcome = await runner.start({ serverUrl: server.url, params: { mode: "refine", strength: 0.3, steps: 2, seed: 1, strategy: "memory", prompt: "" } });
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  assert.equal(doc.layers.length, 3);
  const [bg, layer, seams] = doc.layers;
  assert.match(layer.name, /^Seamwise refine /);
  assert.equal(seams.visible, false);
  assert.equal(doc.historyStates.length, 1);
  assert.deepEqual(fs.files(), []);
  assert.equal(storage.getItem("seamwise.activeJob"), null);
  fake.undo(doc);
  assert.equal(doc.layers.length, 1);
  assert.equal(bg.data.length, 300 * 200 * 3);
});
