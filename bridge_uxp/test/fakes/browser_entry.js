"use strict";
/**
 * Test harness loaded into the browser before the panel: Spectrum stand-ins, a fake Photoshop
 * with one open 16-bit RGB photo and a soft selection, UXP storage and fs, and a `require` that
 * hands these to the panel's bundle where Photoshop would hand the real modules.
 */
require("./spectrum");
const { FakePhotoshop } = require("./photoshop");
const { createUxp } = require("./uxp");
const { createMemoryFs } = require("./memory_fs");

const fake = new FakePhotoshop();
const W = 480;
const H = 320;
const doc = fake.addDocument({
  width: W,
  height: H,
  depth: 16,
  title: "harbour.psd",
  fill: (x, y, c) => {
    const sky = y < H * 0.55;
    const wave = Math.sin(x / 17 + y / 9) * 0.05;
    const base = sky ? [0.45 + (0.3 * y) / H, 0.62 + (0.2 * y) / H, 0.9][c] : [0.12, 0.32 + wave, 0.45 + wave][c];
    return Math.round(Math.max(0, Math.min(1, base)) * 32768);
  },
});
const sel = new Uint8Array(W * H);
for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
  const d = Math.hypot((x - W / 2) / 150, (y - H / 2) / 90);
  sel[y * W + x] = d < 0.9 ? 255 : d < 1 ? Math.round(255 * (1 - d) * 10) : 0;
}
fake.setSelection(doc, sel);

/** secureStorage's bytes in the page's localStorage, so that they outlive a reload as in UXP. */
const SECURE = "seamwise.fake-secure-storage.";
const secureItems = {
  has: (k) => localStorage.getItem(SECURE + k) !== null,
  get: (k) => Uint8Array.from(JSON.parse(localStorage.getItem(SECURE + k))),
  set: (k, v) => localStorage.setItem(SECURE + k, JSON.stringify(Array.from(v))),
  delete: (k) => localStorage.removeItem(SECURE + k),
};

const modules = { photoshop: fake.module, uxp: createUxp({ secureItems }), fs: createMemoryFs() };
window.__fake = fake;
window.require = (name) => {
  if (name in modules) return modules[name];
  throw new Error(`Cannot find module '${name}'`);
};
