"use strict";
/**
 * Photoshop as it really is, on the faithful fake: the user switches documents during a job,
 * layers have transparent bands and are smaller than the selection, documents are untagged, the
 * user cancels the apply's modal scope, and an old Photoshop has no imaging API.
 */
const test = require("node:test");
const assert = require("node:assert/strict");
const { startServer, serverAvailable } = require("./helpers/server");
const { pattern, ellipseSelection, makeRunner } = require("./helpers/scene");
const { snapshotLayer, assertIdentityResult } = require("./helpers/verify");
const { FakePhotoshop } = require("./fakes/photoshop");

const skip = serverAvailable() ? false : "the Seamwise server (.venv and server/ at the repository root) is not available";
const PARAMS = { mode: "refine", strength: 0.3, steps: 1, seed: 3, strategy: "memory", prompt: "" };

let server;
test.before(async () => {
  if (!skip) server = await startServer({ identityDelay: 0.1 });
});
test.after(async () => {
  if (server) await server.stop();
});

/** Updates that do `act(fake)` once, on the first update in `phase`. */
function onPhase(phase, act) {
  let done = false;
  return { push: (u) => { if (!done && u.phase === phase) { done = true; act(); } } };
}

test("switching documents during a job: the result, its mask and the selection change stay in the job's document", { skip }, async () => {
  const fake = new FakePhotoshop();
  const doc = fake.addDocument({ width: 160, height: 120, depth: 16, fill: pattern(16), title: "job.psd" });
  const selection = ellipseSelection(160, 120, { cx: 80, cy: 60, rx: 40, ry: 30, feather: 6 });
  fake.setSelection(doc, selection);
  const before = snapshotLayer(doc.layers[0]);
  let other = null;
  const updates = onPhase("running", () => {
    other = fake.addDocument({ width: 50, height: 40, depth: 8, fill: pattern(8), title: "other.psd" });
  });
  const { runner } = makeRunner({ fake, updates });
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS, margin: 8 });
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  assert.equal(fake.activeDocument, other, "the user's document stays in front");
  assert.equal(other.layers.length, 1);
  assert.equal(other.layers[0].userMask, null);
  assert.equal(other.historyStates.length, 0, "nothing happened in the other document");
  assertIdentityResult({ doc, source: doc.layers[0], before, layer: doc.layers[1], region: { left: 32, top: 22, right: 128, bottom: 98 }, selection });
  assert.equal(doc.historyStates.length, 1, "one undo step in the job's document");
});

test("a layer smaller than the selection, with a fully transparent band, comes back exact", { skip }, async () => {
  const fake = new FakePhotoshop();
  const doc = fake.addDocument({ width: 120, height: 100, depth: 8, fill: pattern(8) });
  const ps = fake.module;
  await ps.core.executeAsModal(async () => {
    const layer = await doc.createLayer({ name: "stripes" });
    for (const [top, rows] of [[20, 10], [60, 15]]) { // rows 30..59 stay transparent
      const data = new Uint8Array(70 * rows * 4);
      for (let i = 0; i < data.length; i++) data[i] = (i * 31 + top) % 251;
      for (let i = 3; i < data.length; i += 4) data[i] = 1 + (i % 254); // no fully transparent pixel
      const img = await ps.imaging.createImageDataFromBuffer(data, { width: 70, height: rows, components: 4, colorSpace: "RGB", colorProfile: doc.profile });
      await ps.imaging.putPixels({ documentID: doc.id, layerID: layer.id, imageData: img, replace: false, targetBounds: { left: 25, top } });
      img.dispose();
    }
  });
  const source = doc.layers[1];
  const sel = new Uint8Array(120 * 100).fill(255); // everything: larger than the layer
  fake.setSelection(doc, sel);
  const before = snapshotLayer(source);
  // bands of 4 rows of the 70 px region: several bands fall inside the transparent rows
  const { runner } = makeRunner({ fake, bandBytes: 70 * 4 * 4 });
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS, margin: 8 });
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  const result = doc.layers[2];
  assert.deepEqual({ ...result.boundsNoEffects }, { left: 25, top: 20, right: 95, bottom: 75, width: 70, height: 55 });
  for (let i = 0; i < before.length; i++) {
    if (result.data[i] !== before[i]) assert.fail(`pixel sample ${i} differs: ${result.data[i]} vs ${before[i]}`);
  }
});

test("an untagged document ('None') is read and written in its own space, and an upscale stays untagged", { skip }, async () => {
  const fake = new FakePhotoshop();
  const doc = fake.addDocument({ width: 40, height: 30, depth: 16, fill: pattern(16), profile: null });
  assert.equal(doc.colorProfileName, "None");
  const before = snapshotLayer(doc.layers[0]);
  let { runner } = makeRunner({ fake });
  let outcome = await runner.start({ serverUrl: server.url, params: PARAMS });
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  assertIdentityResult({ doc, source: doc.layers[0], before, layer: doc.layers[1], region: { left: 0, top: 0, right: 40, bottom: 30 }, selection: null });
  ({ runner } = makeRunner({ fake }));
  fake.activeDocument = doc;
  doc.activeLayers = [doc.layers[0]];
  outcome = await runner.start({ serverUrl: server.url, params: { ...PARAMS, mode: "upscale", scale: 2 } });
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  const big = fake.documents[1];
  assert.equal(big.width, 80);
  assert.equal(big.colorProfileName, "None");
});

test("the user cancels the apply: no half-made document, the result is kept and Apply places it later", { skip }, async () => {
  const fake = new FakePhotoshop();
  const doc = fake.addDocument({ width: 64, height: 48, depth: 8, fill: pattern(8) });
  const updates = onPhase("applying", () => { fake.cancelModalAfter = 3; }); // a few calls in
  const { runner, fs } = makeRunner({ fake, updates });
  const outcome = await runner.start({ serverUrl: server.url, params: { ...PARAMS, mode: "upscale", scale: 2 } });
  assert.equal(outcome.state, "apply_pending");
  assert.match(outcome.error.message, /cancelled.*kept.*Apply/);
  assert.deepEqual(fake.documents, [doc], "the half-made document was closed");
  assert.ok(fs.files().length > 0, "the result is still spooled");
  const applied = await runner.applyPending();
  assert.equal(applied.state, "done", applied.error && applied.error.stack);
  assert.equal(fake.documents.length, 2);
  assert.equal(fake.documents[1].layers.length, 3);
  assert.deepEqual(fs.files(), []);
});

test("a refine cancelled while it is being placed leaves the document as it was", { skip }, async () => {
  const fake = new FakePhotoshop();
  const doc = fake.addDocument({ width: 64, height: 48, depth: 8, fill: pattern(8) });
  fake.setSelection(doc, ellipseSelection(64, 48, { cx: 32, cy: 24, rx: 20, ry: 15 }));
  const updates = onPhase("applying", () => { fake.cancelModalAfter = 2; });
  const { runner } = makeRunner({ fake, updates });
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS });
  assert.equal(outcome.state, "apply_pending");
  assert.equal(doc.layers.length, 1);
  assert.equal(doc.historyStates.length, 0);
});

test("a Photoshop without the imaging API gets a sentence, not a TypeError", async () => {
  const fake = new FakePhotoshop({ imaging: false });
  fake.addDocument({ width: 8, height: 8 });
  const { runner } = makeRunner({ fake });
  await assert.rejects(runner.start({ serverUrl: "http://127.0.0.1:9", params: PARAMS }), /needs Photoshop 25\.0 or newer/);
});
