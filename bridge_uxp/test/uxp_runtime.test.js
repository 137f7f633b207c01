"use strict";
/**
 * The built panel (build/main.js, as it goes into the .ccx) in a bare JavaScript runtime shaped
 * like UXP's: ECMAScript built-ins, the host modules through a global `require`, WebSocket,
 * fetch, localStorage and timers, and nothing else. UXP has no TextEncoder or TextDecoder; a
 * bundle that needs either (as @msgpack/msgpack 3.x does when it loads) leaves the panel blank.
 * Node's own globals (require, process, Buffer) are absent too.
 */
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const { execFileSync } = require("node:child_process");
const { build } = require("../scripts/build");
const { startServer, serverAvailable, tempDir, PYTHON, REPO } = require("./helpers/server");
const { FakePhotoshop } = require("./fakes/photoshop");
const { createUxp, createLocalStorage, uxpWebSocketClass } = require("./fakes/uxp");
const { createUxpFs } = require("./fakes/uxp_fs");
const { createMiniDocument } = require("./fakes/mini_dom");
const { pattern } = require("./helpers/scene");

const skip = serverAvailable() ? false : "the Seamwise server (.venv and server/ at the repository root) is not available";
const ABSENT = ["TextEncoder", "TextDecoder", "require", "process", "Buffer", "module", "exports", "global"];

/** A context with UXP's globals only; `modules` are what `require` hands out. */
function uxpContext(modules, extra = {}) {
  const sandbox = {
    require: (name) => {
      if (name in modules) return modules[name];
      throw new Error(`Cannot find module '${name}'`);
    },
    setTimeout, clearTimeout, setInterval, clearInterval, console,
    ...extra,
  };
  sandbox.window = sandbox;
  const context = vm.createContext(sandbox);
  for (const name of ABSENT.filter((n) => n !== "require")) {
    assert.equal(vm.runInContext(`typeof ${name}`, context), "undefined", `${name} leaked into the runtime`);
  }
  return context;
}

test("the panel's MessagePack codec runs without TextEncoder/TextDecoder and matches Python's msgpack", { skip }, async () => {
  const esbuild = require("esbuild");
  const bundle = await esbuild.build({ entryPoints: [path.join(__dirname, "..", "src", "codec.js")], bundle: true, format: "iife", globalName: "codec", platform: "browser", target: "es2019", write: false, logLevel: "warning" });
  const context = uxpContext({});
  vm.runInContext(bundle.outputFiles[0].text, context);
  const sample = `{"type": "hello", "name": "Café — 写真 📷 \\u00e9", "n": [0, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, 9007199254740991, -1, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649, 1.5, -0.25], "ok": true, "none": null, "nested": {"a": {"b": []}}}`;
  const script = `import json, msgpack, sys
value = json.loads(sys.argv[1])
value["bin"] = bytes(range(256)) * 300
value["long"] = "é" * 70000
sys.stdout.buffer.write(msgpack.packb(value, use_bin_type=True))`;
  const packed = new Uint8Array(execFileSync(PYTHON, ["-c", script, sample], { cwd: REPO }));
  context.packed = packed;
  const roundTrip = vm.runInContext("codec.encodeFrame(codec.decodeFrame(packed))", context);
  assert.deepEqual(Buffer.from(roundTrip), Buffer.from(packed), "decode then encode gives Python's bytes back");
  const decoded = vm.runInContext("codec.decodeFrame(packed)", context);
  assert.equal(decoded.name, "Café — 写真 📷 é");
  assert.equal(decoded.long.length, 70000);
  assert.equal(decoded.bin.length, 256 * 300);
  assert.deepEqual(JSON.parse(JSON.stringify(decoded.n)), JSON.parse(sample).n);
  // and Python reads what the panel writes
  context.message = { type: "x", text: "Grüße 🌍", data: new Uint8Array([0, 255]), big: 2 ** 40, neg: -(2 ** 40), f: 0.1, skipped: undefined };
  const written = vm.runInContext("codec.encodeFrame(message)", context);
  const back = execFileSync(PYTHON, ["-c", "import msgpack, sys, json; v = msgpack.unpackb(sys.stdin.buffer.read()); v['data'] = list(v['data']); print(json.dumps(v, ensure_ascii=False))"], { input: Buffer.from(written), cwd: REPO }).toString();
  assert.deepEqual(JSON.parse(back), { type: "x", text: "Grüße 🌍", data: [0, 255], big: 2 ** 40, neg: -(2 ** 40), f: 0.1 });
});

test("the built panel loads and runs a job end to end with no TextEncoder, TextDecoder or Node globals", { skip, timeout: 120000 }, async (t) => {
  const server = await startServer();
  t.after(() => server.stop());
  const pluginDir = await build(tempDir("seamwise-plugin-"));
  const main = fs.readFileSync(path.join(pluginDir, "main.js"), "utf8");

  const fake = new FakePhotoshop();
  const doc = fake.addDocument({ width: 96, height: 64, depth: 16, fill: pattern(16) });
  const storage = createLocalStorage();
  storage.setItem("seamwise.settings", JSON.stringify({ serverUrl: server.url, localUrl: server.url, steps: 1 }));
  const document = createMiniDocument();
  const context = uxpContext({ photoshop: fake.module, uxp: createUxp(), fs: createUxpFs() },
    { document, localStorage: storage, WebSocket: uxpWebSocketClass(), fetch: globalThis.fetch });
  vm.runInContext(main, context, { filename: "main.js" });

  const waitFor = async (what, check, ms = 30000) => {
    const until = Date.now() + ms;
    while (!check()) {
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}: ${document.getElementById("message").textContent} / ${document.getElementById("server-status").textContent}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  await waitFor("the connection", () => /Connected/.test(document.getElementById("server-status").textContent));
  document.getElementById("enhance").fire("click");
  await waitFor("the result layer", () => doc.layers.length === 3);
  assert.match(doc.layers[1].name, /^Seamwise refine/);
});
