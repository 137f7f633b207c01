"use strict";
/**
 * What the panel says when it cannot use a server: not running (per platform), wrong port, LAN
 * boxes found, and pairing (a server that answers 401, loopback included). The panel runs on the
 * small DOM stand-in with scripted HTTP answers; the Chromium test shows the same panel drawn.
 */
const test = require("node:test");
const assert = require("node:assert/strict");
const { Panel } = require("../src/panel");
const { connectionHelp } = require("../src/help");
const { FakePhotoshop } = require("./fakes/photoshop");
const { createUxp, createLocalStorage, uxpWebSocketClass } = require("./fakes/uxp");
const { createUxpFs } = require("./fakes/uxp_fs");
const { createMiniDocument } = require("./fakes/mini_dom");

const LOCAL = "http://127.0.0.1:7821";

/** A fetch that answers from `routes` ("GET /v1/health" → {status, body}) or fails to connect. */
function scriptedFetch(routes, seen = []) {
  return async (url, init = {}) => {
    const { pathname } = new URL(url);
    const key = `${init.method || "GET"} ${pathname}`;
    seen.push({ key, headers: init.headers || {} });
    const route = routes[key];
    if (!route) throw new TypeError("fetch failed");
    return { ok: route.status < 300, status: route.status, json: async () => route.body };
  };
}

async function startPanel({ routes, platform = "darwin", uxp = createUxp() }) {
  const document = createMiniDocument();
  const seen = [];
  const panel = new Panel({ document, ps: new FakePhotoshop().module, fs: createUxpFs(), uxp, WebSocket: uxpWebSocketClass(), fetch: scriptedFetch(routes, seen), storage: createLocalStorage(), platform });
  await panel.start();
  const text = (id) => document.getElementById(id).textContent;
  return { panel, document, seen, text, hidden: (id) => document.getElementById(id).hidden };
}

const HEALTH = { ok: true, version: "0.1.0", model: "seamwise-tiny", device: "cpu", recommended: {} };
const UNAUTHORIZED = { status: 401, body: { type: "error", code: "unauthorized", message: "a paired token is required" } };

test("no server on this computer: how to start it, for the user's platform", async () => {
  for (const [platform, how] of [["darwin", /Terminal and run: seamwise serve/], ["win32", /PowerShell and run: seamwise serve/]]) {
    const { text, hidden } = await startPanel({ routes: {}, platform });
    assert.match(text("server-status"), /No server at 127\.0\.0\.1:7821/);
    assert.equal(hidden("connection-help"), false);
    assert.match(text("connection-help"), /not running on this computer/);
    assert.match(text("connection-help"), how);
    assert.match(text("connection-help"), /--port/);
    assert.equal(hidden("pair-row"), true);
  }
});

test("something else on the port is named as such", async () => {
  const { text } = await startPanel({ routes: { "GET /v1/health": { status: 200, body: { status: "fine" } } } });
  assert.match(text("server-status"), /is not a Seamwise server/);
  assert.match(text("connection-help"), /not a Seamwise server: check the port/);
});

test("a loopback server that asks for pairing (401) shows the pairing step; the token then goes along", async () => {
  const routes = { "GET /v1/health": UNAUTHORIZED, "GET /v1/peers": UNAUTHORIZED, "POST /v1/pair": { status: 200, body: { token: "t0k", token_id: "a" } } };
  const { panel, document, text, hidden, seen } = await startPanel({ routes });
  assert.match(text("server-status"), /needs pairing/);
  assert.equal(hidden("pair-row"), false, "the pairing row shows for this computer's server too");
  assert.match(text("connection-help"), /server on this computer asks this panel to pair once/);
  assert.match(text("connection-help"), /seamwise pair/);
  routes["GET /v1/health"] = { status: 200, body: HEALTH };
  document.getElementById("pair-code").value = "123 456";
  await panel._pair();
  assert.deepEqual(seen.find((r) => r.key === "POST /v1/pair") && true, true);
  const after = seen.filter((r) => r.key === "GET /v1/health").pop();
  assert.equal(after.headers.Authorization, "Bearer t0k");
  assert.match(text("server-status"), /Connected/);
  assert.equal(hidden("connection-help"), true);
  assert.equal(hidden("pair-row"), true);
});

test("start-up does not depend on secureStorage: a rejecting getItem still lets the panel connect", async () => {
  const uxp = createUxp();
  uxp.storage.secureStorage.getItem = async () => { throw new Error("The keychain is locked"); };
  const { text } = await startPanel({ routes: { "GET /v1/health": { status: 200, body: HEALTH } }, uxp });
  assert.match(text("server-status"), /Connected to 127\.0\.0\.1:7821/);
});

test("help lines for a LAN box, found boxes and a protocol mismatch", () => {
  const lan = connectionHelp({ status: "offline", url: "http://192.168.1.20:7821", boxes: 2 }).join(" ");
  assert.match(lan, /No answer from 192\.168\.1\.20:7821/);
  assert.match(lan, /seamwise serve --lan/);
  assert.match(lan, /found 2 render boxes/);
  const odd = connectionHelp({ status: "offline", url: "http://127.0.0.1:9000" }).join(" ");
  assert.match(odd, /looking on port 9000/);
  const outdated = connectionHelp({ status: "outdated", url: LOCAL, error: "photoshop-uxp speaks protocol 1, older than this Seamwise server 2.0 (protocol 2): update the Seamwise panel or plugin." });
  assert.deepEqual(outdated, ["photoshop-uxp speaks protocol 1, older than this Seamwise server 2.0 (protocol 2): update the Seamwise panel or plugin."]);
  assert.deepEqual(connectionHelp({ status: "ok", url: LOCAL }), []);
});

test("a WebSocket refused with 4401 mid-way shows the pairing step instead of reconnecting", { timeout: 30000 }, async (t) => {
  const { WebSocketServer } = require("ws");
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1", handleProtocols: (protocols) => (protocols.has("seamwise.v1") ? "seamwise.v1" : false) });
  wss.on("connection", (ws) => ws.close(4401, "pair first"));
  t.after(() => wss.close());
  await new Promise((resolve) => wss.once("listening", resolve));
  const url = `http://127.0.0.1:${wss.address().port}`;
  const document = createMiniDocument();
  const fake = new FakePhotoshop();
  fake.addDocument({ width: 16, height: 16 });
  const storage = createLocalStorage();
  storage.setItem("seamwise.settings", JSON.stringify({ serverUrl: url, localUrl: url }));
  const panel = new Panel({ document, ps: fake.module, fs: createUxpFs(), uxp: createUxp(), WebSocket: uxpWebSocketClass(), fetch: scriptedFetch({ "GET /v1/health": { status: 200, body: HEALTH } }), storage, platform: "darwin" });
  await panel.start();
  assert.match(document.getElementById("server-status").textContent, /Connected/);
  const started = Date.now();
  const outcome = await panel._run((runner) => runner.start({ serverUrl: url, params: { mode: "refine", strength: 0.3, steps: 1, seed: 0, strategy: "memory", prompt: "" } }));
  assert.ok(Date.now() - started < 10000, "no two-minute reconnect loop");
  assert.equal(outcome.state, "failed");
  assert.equal(outcome.error.code, "unauthorized");
  assert.equal(document.getElementById("pair-row").hidden, false);
  assert.match(document.getElementById("connection-help").textContent, /pair once/);
});
