"use strict";
/**
 * What happens when things go wrong mid-job, with the real server: cancel, a killed and restarted
 * server, a reloaded panel, a modal conflict, a closed document, and a LAN box that needs pairing.
 */
const test = require("node:test");
const assert = require("node:assert/strict");
const { startServer, serverAvailable, tempDir, newPairingCode } = require("./helpers/server");
const { pattern, ellipseSelection, makeRunner } = require("./helpers/scene");
const { snapshotLayer, assertIdentityResult } = require("./helpers/verify");
const { JobRunner } = require("../src/job");
const { ServerApi } = require("../src/server_http");
const { createLocalStorage } = require("./fakes/uxp");
const { createUxpFs } = require("./fakes/uxp_fs");
const { FakePhotoshop } = require("./fakes/photoshop");

const skip = serverAvailable() ? false : "the Seamwise server (.venv and server/ at the repository root) is not available";
const PARAMS = { mode: "refine", strength: 0.3, steps: 6, seed: 3, strategy: "memory", prompt: "" };

function selectedDocument(fake, { width = 400, height = 300, depth = 16 } = {}) {
  const doc = fake.addDocument({ width, height, depth, fill: pattern(depth) });
  const selection = ellipseSelection(width, height, { cx: width / 2, cy: height / 2, rx: width / 3, ry: height / 3 });
  fake.setSelection(doc, selection);
  return { doc, selection, before: snapshotLayer(doc.layers[0]) };
}

/** Selection bounds grown by the panel's default 64 px context margin, clipped to the canvas. */
function regionOf(doc, margin = 64) {
  const s = doc.selection.bounds;
  return { left: Math.max(0, s.left - margin), top: Math.max(0, s.top - margin), right: Math.min(doc.width, s.right + margin), bottom: Math.min(doc.height, s.bottom + margin) };
}

// One server (each step takes 0.2 s, so there is a "running" phase to act in) for the tests that
// neither kill it nor need LAN mode.
let shared;
test.before(async () => {
  if (!skip) shared = await startServer({ identityDelay: 0.2 });
});
test.after(async () => {
  if (shared) await shared.stop();
});

/** Resolve when an update satisfying `predicate` is pushed. */
function when(updates, predicate) {
  return new Promise((resolve) => {
    const push = updates.push.bind(updates);
    updates.push = (u) => {
      const n = push(u);
      if (predicate(u)) resolve(u);
      return n;
    };
  });
}

test("cancel while rendering: no layer, nothing kept, the server forgets the job", { skip }, async (t) => {
  const server = shared;
  const updates = [];
  const { runner, fake, fs, storage } = makeRunner({ updates });
  const { doc } = selectedDocument(fake);
  when(updates, (u) => u.phase === "running").then(() => runner.cancel());
  const outcome = await runner.start({ serverUrl: server.url, params: { ...PARAMS, steps: 40 } });
  assert.equal(outcome.state, "cancelled");
  assert.equal(doc.layers.length, 1);
  assert.equal(doc.historyStates.length, 0);
  assert.deepEqual(fs.files(), []);
  assert.equal(storage.getItem("seamwise.activeJob"), null);
  const answer = await fetch(`${server.url}/v1/jobs/${outcome.job}`);
  assert.equal(answer.status, 404, "released on the server");
});

test("cancel during upload stops sending", { skip }, async (t) => {
  const server = shared;
  const updates = [];
  const { runner, fake } = makeRunner({ updates });
  const { doc } = selectedDocument(fake, { width: 2000, height: 1500 });
  when(updates, (u) => u.phase === "uploading" && u.fraction > 0).then(() => runner.cancel());
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS });
  assert.equal(outcome.state, "cancelled");
  assert.equal(doc.layers.length, 1);
  assert.ok(!updates.some((u) => u.phase === "running" || u.phase === "downloading"));
});

test("a server killed mid-render and restarted on the same data: the job resumes and lands", { skip }, async (t) => {
  const dataDir = tempDir();
  let server = await startServer({ dataDir, identityDelay: 0.3 });
  const port = server.port;
  t.after(() => server.stop());
  const updates = [];
  const { runner, fake } = makeRunner({ updates });
  const { doc, selection, before } = selectedDocument(fake);
  when(updates, (u) => u.phase === "running").then(async () => {
    await server.kill();
    server = await startServer({ dataDir, port, identityDelay: 0.3 });
  });
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS });
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  assert.ok(updates.some((u) => u.phase === "reconnecting"), "it had to reconnect");
  assertIdentityResult({ doc, source: doc.layers[0], before, layer: doc.layers[1], region: regionOf(doc), selection });
  assert.equal(doc.historyStates.length, 1);
});

/**
 * Run a job, kill the server once `phase` is past 20 %, restart it on the same data and port, and
 * return the progress updates from the reconnect on (after checking the job still came out exact).
 */
async function killServerDuring(t, phase) {
  const dataDir = tempDir();
  let server = await startServer({ dataDir });
  const port = server.port;
  t.after(() => server.stop());
  const updates = [];
  const { runner, fake } = makeRunner({ updates });
  const { doc, selection, before } = selectedDocument(fake, { width: 3000, height: 2000 });
  when(updates, (u) => u.phase === phase && u.fraction > 0.2).then(async () => {
    await server.kill();
    server = await startServer({ dataDir, port });
  });
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS });
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  const resumed = updates.findIndex((u) => u.phase === "reconnecting");
  assert.ok(resumed > 0, "it had to reconnect");
  assertIdentityResult({ doc, source: doc.layers[0], before, layer: doc.layers[1], region: regionOf(doc), selection });
  return updates.slice(resumed);
}

test("a server killed mid-download: the download goes on from the first missing chunk", { skip }, async (t) => {
  const after = await killServerDuring(t, "downloading");
  const firstAfter = after.find((u) => u.phase === "downloading");
  assert.ok(firstAfter.fraction > 0.2, "the download went on where it stopped");
});

test("a server killed mid-upload: only the missing chunks are sent again", { skip }, async (t) => {
  const after = await killServerDuring(t, "uploading");
  const firstAfter = after.find((u) => u.phase === "uploading" && u.fraction > 0);
  assert.ok(firstAfter && firstAfter.fraction > 0.2, "upload resumed where the server's disk left off");
});

test("a panel reloaded while the job runs picks it up from localStorage", { skip }, async (t) => {
  const server = shared;
  const fake = new FakePhotoshop();
  const storage = createLocalStorage();
  const fs = createUxpFs();
  const updates = [];
  const first = makeRunner({ fake, storage, fs, updates, reconnectForMs: 0 }).runner;
  const { doc, selection, before } = selectedDocument(fake);
  // The panel goes away: its socket closes and its code stops (reconnectForMs 0: no retry).
  when(updates, (u) => u.phase === "running").then(() => first.conn.close());
  const gone = await first.start({ serverUrl: server.url, params: PARAMS });
  assert.equal(gone.state, "failed");
  assert.equal(doc.layers.length, 1);
  const record = JobRunner.storedRecord(storage);
  assert.equal(record.job, gone.job);
  const second = makeRunner({ fake, storage, fs }).runner;
  const outcome = await second.resume(record);
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  assertIdentityResult({ doc, source: doc.layers[0], before, layer: doc.layers[1], region: regionOf(doc), selection });
  assert.equal(JobRunner.storedRecord(storage), null);
});

test("a modal conflict keeps the result and places it on Apply; nothing half-written", { skip }, async (t) => {
  const server = shared;
  const fake = new FakePhotoshop();
  // another plugin goes modal once the layer has been read, and stays so until the result is in
  const updates = { push: (u) => { if (u.phase === "running") fake.otherPluginModal = true; } };
  const { runner } = makeRunner({ updates, fake });
  const { doc, selection, before } = selectedDocument(fake);
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS });
  assert.equal(outcome.state, "apply_pending");
  assert.match(outcome.error.message, /busy/);
  assert.equal(doc.layers.length, 1);
  assert.equal(doc.historyStates.length, 0);
  fake.otherPluginModal = false;
  const applied = await runner.applyPending();
  assert.equal(applied.state, "done", applied.error && applied.error.stack);
  assertIdentityResult({ doc, source: doc.layers[0], before, layer: doc.layers[1], region: regionOf(doc), selection });
  assert.equal((await fetch(`${server.url}/v1/jobs/${outcome.job}`)).status, 404, "released after placing");
});

test("a result waiting for Apply can be cancelled instead", { skip }, async () => {
  const server = shared;
  const fake = new FakePhotoshop();
  const updates = { push: (u) => { if (u.phase === "running") fake.otherPluginModal = true; } };
  const { runner, fs, storage } = makeRunner({ updates, fake });
  const { doc } = selectedDocument(fake, { width: 120, height: 90 });
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS });
  fake.otherPluginModal = false;
  assert.equal(outcome.state, "apply_pending");
  const cancelled = await runner.cancel();
  assert.equal(cancelled.state, "cancelled");
  assert.equal(doc.layers.length, 1);
  assert.deepEqual(fs.files(), []);
  assert.equal(storage.getItem("seamwise.activeJob"), null);
  assert.equal((await fetch(`${server.url}/v1/jobs/${outcome.job}`)).status, 404, "released on the server");
});

test("a failure while writing rolls the whole step back", { skip }, async (t) => {
  const server = shared;
  const { runner, fake } = makeRunner();
  const { doc } = selectedDocument(fake);
  const putLayerMask = fake.module.imaging.putLayerMask;
  fake.module.imaging.putLayerMask = async () => {
    throw new Error("Photoshop ran out of scratch disk");
  };
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS });
  fake.module.imaging.putLayerMask = putLayerMask;
  assert.equal(outcome.state, "failed");
  assert.match(outcome.error.message, /scratch disk/);
  assert.equal(doc.layers.length, 1, "no half-written layer");
  assert.equal(doc.historyStates.length, 0);
});

test("a document closed during the render gets a clear message and no layer anywhere", { skip }, async (t) => {
  const server = shared;
  const updates = [];
  const { runner, fake } = makeRunner({ updates });
  fake.addDocument({ width: 50, height: 50 });
  const { doc } = selectedDocument(fake);
  when(updates, (u) => u.phase === "running").then(() => fake.closeDocument(doc));
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS });
  assert.equal(outcome.state, "failed");
  assert.match(outcome.error.message, /was closed/);
  assert.ok(fake.documents.every((d) => d.layers.length === 1));
});

test("a LAN box refuses an unpaired panel and accepts it after pairing", { skip }, async (t) => {
  const server = await startServer({ lan: true });
  t.after(() => server.stop());
  const api = new ServerApi({ fetch });
  await assert.rejects(api.health(server.url, null), (err) => err.code === "unauthorized");
  const tokens = {};
  const { runner, fake } = makeRunner({ tokens });
  selectedDocument(fake, { width: 64, height: 48 });
  const refused = await runner.start({ serverUrl: server.url, params: PARAMS });
  assert.equal(refused.state, "failed");
  assert.equal(refused.error.code, "unauthorized");
  await assert.rejects(api.pair(server.url, "000000", "test"), (err) => err.code !== undefined);
  const code = server.pairingCode;
  assert.match(code, /^\d{6}$/, "the server printed a pairing code");
  const paired = await api.pair(server.url, code, "Photoshop test");
  assert.ok(paired.token);
  await assert.rejects(api.pair(server.url, code, "second try"), (err) => err.code === "unauthorized", "a code works once");
  const another = await api.pair(server.url, newPairingCode(server.dataDir), "second machine"); // `seamwise pair`
  assert.ok(another.token && another.token !== paired.token);
  tokens[server.url] = paired.token;
  assert.equal((await api.health(server.url, paired.token)).ok, true);
  const { runner: again, fake: fake2 } = makeRunner({ tokens });
  const { doc } = selectedDocument(fake2, { width: 64, height: 48 });
  const outcome = await again.start({ serverUrl: server.url, params: PARAMS });
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  assert.equal(doc.layers.length, 3);
});
