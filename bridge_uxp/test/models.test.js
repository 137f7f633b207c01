"use strict";
/**
 * Models and cluster in the panel: the models the server found (/v1/models) with the one in use,
 * the default and unsupported ones; the restart the user needs after choosing another default;
 * the server's advice when it cannot render; and, on a cluster (`seamwise serve --cluster`), the
 * box and actor of a running job and the cluster's load. The model list comes from a real server
 * on loopback; `runs_on` and `cluster` are checked with the shapes docs/PROTOCOL.md gives, since a
 * Ray cluster is too slow to start here.
 */
const test = require("node:test");
const assert = require("node:assert/strict");
const { Panel } = require("../src/panel");
const { modelRows, restartNote, adviceLines, runsOnCaption, clusterLoad } = require("../src/models");
const { progressCaption } = require("../src/job");
const { FakePhotoshop } = require("./fakes/photoshop");
const { createUxp, createLocalStorage, uxpWebSocketClass } = require("./fakes/uxp");
const { createUxpFs } = require("./fakes/uxp_fs");
const { createMiniDocument } = require("./fakes/mini_dom");
const { startServer, serverAvailable } = require("./helpers/server");

const LOCAL = "http://127.0.0.1:7821";
const HEALTH = { ok: true, version: "0.1.0", model: "seamwise-tiny", device: "cpu", recommended: {} };
const MODELS = {
  in_use: "seamwise-tiny",
  models: [
    { id: "tiny", name: "seamwise-tiny", format: "diffusers", family: "tiny", family_name: "Seamwise tiny", supported: true, note: "", source: "bundled", size_bytes: 1000, default: false },
    { id: "juggernaut", name: "juggernautXL", format: "checkpoint", family: "sdxl", family_name: "Stable Diffusion XL", supported: true, note: "", source: "~/models", size_bytes: 6e9, default: true },
    { id: "flux1", name: "flux1-dev", format: "checkpoint", family: "flux", family_name: "FLUX.1", supported: false, note: "not yet supported", source: "~/models", size_bytes: 2e10, default: false },
  ],
};
const RUNS_ON = { actor: "render-2", box: "gpu-box-b", node: "n2", attempt: 1, helpers: [] };

/** A fetch that answers from `routes` ("GET /v1/health" → {status, body}) or fails to connect. */
function scriptedFetch(routes) {
  return async (url, init = {}) => {
    const route = routes[`${init.method || "GET"} ${new URL(url).pathname}`];
    if (!route) throw new TypeError("fetch failed");
    return { ok: route.status < 300, status: route.status, json: async () => route.body };
  };
}

async function startPanel({ fetch, url = LOCAL }) {
  const document = createMiniDocument();
  const storage = createLocalStorage();
  storage.setItem("seamwise.settings", JSON.stringify({ serverUrl: url, localUrl: url }));
  const panel = new Panel({ document, ps: new FakePhotoshop().module, fs: createUxpFs(), uxp: createUxp(), WebSocket: uxpWebSocketClass(), fetch, storage, platform: "darwin" });
  await panel.start();
  const el = (id) => document.getElementById(id);
  return { panel, el, rows: () => el("model-list").children.map((c) => ({ text: c.textContent, className: c.className })) };
}

test("model rows: name and family, default and in-use marked, unsupported ones with their note", () => {
  assert.deepEqual(modelRows(MODELS), [
    { text: "seamwise-tiny (Seamwise tiny) · in use", supported: true, isDefault: false },
    { text: "juggernautXL (Stable Diffusion XL) · default", supported: true, isDefault: true },
    { text: "flux1-dev (FLUX.1) – not yet supported", supported: false, isDefault: false },
  ]);
  assert.deepEqual(modelRows(null), [], "an older server without /v1/models");
});

test("a restart is asked for only when the default is not the model in use", () => {
  assert.match(restartNote(MODELS), /default model is juggernautXL but the server still uses seamwise-tiny: restart the server.*seamwise models default juggernaut/);
  const same = { ...MODELS, models: MODELS.models.map((m) => ({ ...m, default: m.id === "tiny" })) };
  assert.equal(restartNote(same), null);
  assert.equal(restartNote({ models: [], in_use: "x" }), null);
  assert.equal(restartNote(null), null);
});

test("advice shows only when the server cannot render: its model error first, then its lines", () => {
  const info = { model_error: "CUDA out of memory", advice: ["Close other GPU programs.", "Or run seamwise serve --device cpu."] };
  assert.deepEqual(adviceLines(info), ["The model did not load: CUDA out of memory", "Close other GPU programs.", "Or run seamwise serve --device cpu."]);
  assert.deepEqual(adviceLines({ model_error: null, advice: ["Disk is low."] }), [], "a working server: no noise");
  const repeated = { model_error: "no such file", advice: ["the model did not load (no such file): pick another with `seamwise models default` and restart the server", "Free some disk."] };
  assert.deepEqual(adviceLines(repeated), ["The model did not load: no such file", "Free some disk."], "the error once");
  assert.deepEqual(adviceLines({ model_error: null, advice: ["Disk is low."] }, true), ["Disk is low."], "after a failed job");
  assert.deepEqual(adviceLines(null, true), []);
});

test("runs_on: box and actor, a retry, a split frame; nothing off a cluster", () => {
  assert.equal(runsOnCaption(RUNS_ON), "on gpu-box-b (render-2)");
  assert.equal(runsOnCaption({ ...RUNS_ON, attempt: 2 }), "retried on gpu-box-b (render-2), attempt 2");
  assert.equal(runsOnCaption({ ...RUNS_ON, helpers: ["render-0", "render-1"] }), "on gpu-box-b (render-2), split across 3 actors");
  assert.equal(runsOnCaption(undefined), "");
  // the first event of each attempt (phase "load") already names the box
  assert.equal(progressCaption({ type: "progress", state: "running", phase: "load", step: 0, steps: 0, tile: 0, tiles: 0, runs_on: { ...RUNS_ON, attempt: 3 } }),
    "load · retried on gpu-box-b (render-2), attempt 3");
  assert.equal(progressCaption({ state: "running", phase: "denoise", step: 1, steps: 4, tile: 3, tiles: 9, unit: "tile", runs_on: RUNS_ON }),
    "denoise · step 1/4 · tile 3/9 · on gpu-box-b (render-2)");
});

test("cluster load for the status line", () => {
  assert.equal(clusterLoad({ backend: "ray", actors: 4, gpus: 4, nodes: 2, busy: 3, idle: 1, running: [] }), "cluster: 3/4 actors busy on 2 boxes");
  assert.equal(clusterLoad({ backend: "ray", actors: 1, nodes: 1, busy: 0, idle: 1 }), "cluster: 0/1 actors busy on 1 box");
  assert.equal(clusterLoad(undefined), "");
});

test("the panel lists a real server's models and names the one in use", { skip: !serverAvailable() && "the Seamwise server is not available", timeout: 90000 }, async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const answer = await (await fetch(`${server.url}/v1/models`)).json();
  const { el, rows } = await startPanel({ fetch, url: server.url });
  assert.match(el("server-status").textContent, /^Connected/);
  assert.doesNotMatch(el("server-status").textContent, /cluster/, "no cluster load off a cluster");
  assert.equal(el("models").hidden, false);
  assert.equal(el("model-in-use").textContent, `Model in use: ${answer.in_use}`);
  assert.equal(rows().length, answer.models.length);
  assert.ok(rows().length >= 1, "the bundled model at least");
  answer.models.forEach((m, i) => assert.ok(rows()[i].text.startsWith(`${m.name} (${m.family_name})`), rows()[i].text));
  assert.equal(rows().filter((r) => /\bdefault\b/.test(r.className)).length, answer.models.filter((m) => m.default).length);
  // the test server runs the identity engine, not its default model: the panel says a restart would switch
  const def = answer.models.find((m) => m.default);
  assert.equal(el("model-restart").hidden, !def || def.name === answer.in_use || def.id === answer.in_use);
  assert.equal(el("model-advice").hidden, true, "the model loaded: no advice");
});

test("the panel greys unsupported models, asks for a restart, shows the cluster's load", async () => {
  const info = { ...HEALTH, model_error: null, advice: [], cluster: { backend: "ray", actors: 4, gpus: 4, nodes: 2, busy: 1, idle: 3, running: [] } };
  const { el, rows } = await startPanel({ fetch: scriptedFetch({ "GET /v1/health": { status: 200, body: HEALTH }, "GET /v1/info": { status: 200, body: info }, "GET /v1/models": { status: 200, body: MODELS } }) });
  assert.equal(el("server-status").textContent, "Connected to 127.0.0.1:7821 · seamwise-tiny on cpu · cluster: 1/4 actors busy on 2 boxes");
  assert.deepEqual(rows().map((r) => r.className), ["model", "model default", "model unsupported"]);
  assert.equal(el("model-restart").hidden, false);
  assert.match(el("model-restart").textContent, /restart the server/);
  assert.equal(el("model-advice").hidden, true);
});

test("a server whose model did not load: its error and advice, even without /v1/models", async () => {
  const info = { ...HEALTH, model_error: "No model found.", advice: ["Run seamwise models add FOLDER."] };
  const { el, rows } = await startPanel({ fetch: scriptedFetch({ "GET /v1/health": { status: 200, body: HEALTH }, "GET /v1/info": { status: 200, body: info } }) });
  assert.equal(el("models").hidden, false);
  assert.deepEqual(rows(), []);
  assert.equal(el("model-advice").hidden, false);
  assert.equal(el("model-advice").textContent, "The model did not load: No model found.\nRun seamwise models add FOLDER.");
  assert.equal(el("model-restart").hidden, true);
});
