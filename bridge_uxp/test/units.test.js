"use strict";
/** Pieces that need neither a server nor a browser: framing, mailbox, banding, control states. */
const test = require("node:test");
const assert = require("node:assert/strict");
const { encodeFrame, decodeFrame, toBase64 } = require("../src/codec");
const { Mailbox } = require("../src/connection");
const { websocketUrl, normaliseUrl } = require("../src/address");
const { BandSource, placeInBand, bufferProfile } = require("../src/photoshop_io");
const { controlStates, recommendedFor, remembered } = require("../src/panel");
const { progressCaption } = require("../src/job");


test("frames are msgpack maps with bytes as bin", () => {
  const data = new Uint8Array([1, 2, 3, 250]);
  const frame = encodeFrame({ type: "chunk", job: "j", stream: "image", index: 3, data, skipped: undefined });
  const back = decodeFrame(frame);
  assert.deepEqual(back, { type: "chunk", job: "j", stream: "image", index: 3, data });
  assert.ok(back.data instanceof Uint8Array);
  assert.throws(() => encodeFrame({ job: "x" }), /type/);
  assert.throws(() => decodeFrame(new Uint8Array([0x92, 1, 2])), /not a protocol message/);
});

test("base64 matches Node's", () => {
  for (const n of [0, 1, 2, 3, 4, 5, 100]) {
    const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 37 + 11) & 255);
    assert.equal(toBase64(bytes), Buffer.from(bytes).toString("base64"));
  }
});

test("mailbox keeps early messages, serves waiters in order and fails them all on close", async () => {
  const box = new Mailbox();
  box.push({ type: "ack", index: 1 });
  assert.equal((await box.take((m) => m.type === "ack")).index, 1);
  const later = box.take((m) => m.type === "job.done");
  box.push({ type: "progress" });
  box.push({ type: "job.done", job: "a" });
  assert.equal((await later).job, "a");
  const pending = box.take(() => false);
  box.fail(new Error("gone"));
  await assert.rejects(pending, /gone/);
  await assert.rejects(box.take((m) => m.type === "welcome"), /gone/);
});

test("server addresses", () => {
  assert.equal(websocketUrl("http://127.0.0.1:7821"), "ws://127.0.0.1:7821/v1/ws");
  assert.equal(websocketUrl("https://box.local:9000/x"), "wss://box.local:9000/v1/ws");
  assert.equal(normaliseUrl("192.168.1.20"), "http://192.168.1.20:7821");
  assert.equal(normaliseUrl(" 10.0.0.5:8000 "), "http://10.0.0.5:8000");
  assert.throws(() => normaliseUrl(""), /address/);
  assert.throws(() => normaliseUrl("ftp://x"), /Unsupported/);
  assert.equal(normaliseUrl("http://[::1]:9"), "http://[::1]:9");
  assert.equal(normaliseUrl("Box.Local"), "http://box.local:7821");
  assert.throws(() => normaliseUrl("a b"), /not a server address/);
  assert.throws(() => normaliseUrl("x:99999"), /out of range/);
});

test("BandSource serves any byte range from bands it reads one at a time", async () => {
  const rowBytes = 10;
  const height = 1000;
  const reads = [];
  const source = new BandSource({
    rowBytes,
    height,
    readRows: async (top, rows) => {
      reads.push([top, rows]);
      return Uint8Array.from({ length: rows * rowBytes }, (_, i) => (top * rowBytes + i) % 251);
    },
  });
  source.bandRows = 64;
  const all = await source.read(0, rowBytes * height);
  assert.equal(all.length, 10000);
  all.forEach((v, i) => assert.equal(v, i % 251));
  assert.equal(reads.length, Math.ceil(1000 / 64));
  const middle = await source.read(1234, 999);
  middle.forEach((v, i) => assert.equal(v, (1234 + i) % 251));
});

test("trimmed bounds are placed into a zeroed band", () => {
  const got = { left: 2, top: 1, right: 4, bottom: 2 };
  const want = { left: 0, top: 0, right: 5, bottom: 3 };
  const band = placeInBand(new Uint8Array([7, 8]), got, want, 1);
  assert.deepEqual(Array.from(band), [0, 0, 0, 0, 0, 0, 0, 7, 8, 0, 0, 0, 0, 0, 0]);
  const same = new Uint8Array(15);
  assert.equal(placeInBand(same, want, want, 1), same);
});

test("32-bit profile names lose their linear suffix for createImageDataFromBuffer", () => {
  assert.equal(bufferProfile("sRGB IEC61966-2.1 (Linear RGB Profile)"), "sRGB IEC61966-2.1");
  assert.equal(bufferProfile("Adobe RGB (1998)"), "Adobe RGB (1998)");
});

test("controls follow the state", () => {
  const ok = { status: "ok" };
  let s = controlStates({ server: ok, phase: "idle" });
  assert.deepEqual([s.enhance.disabled, s.cancel.disabled, s.apply.hidden, s.pairRow.hidden], [false, true, true, true]);
  s = controlStates({ server: ok, phase: "running" });
  assert.deepEqual([s.enhance.disabled, s.cancel.disabled, s.settings.disabled, s.server.disabled], [true, false, true, true]);
  s = controlStates({ server: ok, phase: "apply_pending" });
  assert.deepEqual([s.enhance.hidden, s.apply.hidden, s.apply.disabled, s.cancel.disabled], [true, false, false, false]);
  s = controlStates({ server: { status: "offline" }, phase: "done" });
  assert.equal(s.enhance.disabled, true);
  s = controlStates({ server: { status: "unauthorized" }, phase: "idle" });
  assert.equal(s.pairRow.hidden, false);
});

test("server picker: this computer, the boxes the local server lists, a manual address, Other", () => {
  const { Panel } = require("../src/panel");
  const storage = { getItem: () => JSON.stringify({ serverUrl: "http://10.0.0.9:7000" }), setItem() {} };
  const panel = new Panel({ document: {}, storage, fetch: async () => {} });
  panel.peers = [
    { id: "a", name: "Studio GPU", address: "192.168.1.20", port: 7821, online: true },
    { id: "b", name: "Old box", address: "192.168.1.30", port: 7821, online: false },
  ];
  assert.deepEqual(panel._serverChoices(), [
    { label: "This computer", url: "http://127.0.0.1:7821" },
    { label: "Studio GPU (192.168.1.20:7821)", url: "http://192.168.1.20:7821" },
    { label: "Old box (192.168.1.30:7821) – offline", url: "http://192.168.1.30:7821" },
    { label: "10.0.0.9:7000", url: "http://10.0.0.9:7000" },
    { label: "Other address…", url: null },
  ]);
});

test("strength and steps follow the server model's recommendation until the user picks others", () => {
  const info = { recommended: { refine: { strength: 0.1, steps: 1 }, x2: { strength: 0.2, steps: 2 } } };
  assert.deepEqual(recommendedFor(info, "refine"), { strength: 0.1, steps: 1 });
  assert.deepEqual(recommendedFor(info, "upscale"), { strength: 0.2, steps: 2 });
  // an older server, or none yet: the generic values
  assert.deepEqual(recommendedFor({}, "refine"), { strength: 0.35, steps: 8 });
  assert.deepEqual(recommendedFor(null, "refine"), { strength: 0.35, steps: 8 });
  assert.deepEqual(recommendedFor({ recommended: { refine: { strength: "x", steps: 1 } } }, "refine"), { strength: 0.35, steps: 8 });
  assert.equal(remembered(null, 1, 1), null, "untouched: keeps following the model");
  assert.equal(remembered(null, 4, 1), 4, "changed: the user's value sticks");
  assert.equal(remembered(4, 1, 1), 1, "once chosen, even the recommended value is the user's own");
});


test("the status line names tiles, or layers when the frame is evaluated whole", () => {
  const running = { state: "running", phase: "denoise", step: 1, steps: 4, tile: 3, tiles: 9 };
  assert.equal(progressCaption({ ...running, unit: "tile" }), "denoise · step 1/4 · tile 3/9");
  assert.equal(progressCaption({ ...running, unit: "operation", tile: 37, tiles: 180 }),
    "denoise · step 1/4 · layer 37/180");
  assert.equal(progressCaption(running), "denoise · step 1/4 · tile 3/9");   // an older server
  assert.equal(progressCaption({ state: "queued", phase: "queued", position: 2, step: 0, steps: 4, tile: 0, tiles: 0 }),
    "Queued (position 2) · step 0/4");
});
