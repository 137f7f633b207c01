"use strict";
/**
 * The built panel (build/ as it goes into the .ccx) in headless Chromium, with Spectrum
 * stand-ins and the fake Photoshop in the page, talking to a real server on loopback.
 * Saves screenshots and checks that the main controls exist and follow the job's state.
 *
 * Chromium runs with --disable-web-security: UXP's fetch has no CORS, and the panel's HTTP calls
 * (health, pairing) must behave as they do in Photoshop.
 */
const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const esbuild = require("esbuild");
const { build } = require("../scripts/build");
const { startServer, serverAvailable, tempDir } = require("./helpers/server");

const CHROMIUM = process.env.CHROMIUM_PATH || "/usr/bin/chromium";
const ARTIFACTS = process.env.SEAMWISE_ARTIFACTS || path.join(os.tmpdir(), "seamwise-artifacts");
const skip = !fs.existsSync(CHROMIUM)
  ? `Chromium not found at ${CHROMIUM} (Debian: apt-get install -y chromium; or set CHROMIUM_PATH): panel UI test skipped`
  : !serverAvailable()
    ? "the Seamwise server (.venv and server/ at the repository root) is not available"
    : false;

const CONTROLS = ["server-picker", "server-refresh", "server-status", "mode", "strength", "steps", "seed", "strategy", "prompt", "negative-prompt", "enhance", "cancel", "progress", "preview", "message"];

test("panel in headless Chromium: controls present, enabled by state, a job runs end to end", { skip, timeout: 120000 }, async (t) => {
  const { chromium } = require("playwright-core");
  const server = await startServer({ identityDelay: 0.25 });
  t.after(() => server.stop());
  const pluginDir = await build(tempDir("seamwise-plugin-"));
  const harness = await esbuild.build({ entryPoints: [path.join(__dirname, "fakes", "browser_entry.js")], bundle: true, format: "iife", write: false, logLevel: "warning" });
  fs.mkdirSync(ARTIFACTS, { recursive: true });

  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-web-security"],
  });
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 300, height: 640 }, deviceScaleFactor: 1 });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.addInitScript(({ url }) => {
    if (!localStorage.getItem("seamwise.settings")) localStorage.setItem("seamwise.settings", JSON.stringify({ serverUrl: url, localUrl: url, steps: 12 }));
  }, { url: server.url });
  await page.addInitScript({ content: harness.outputFiles[0].text });
  await page.goto(`file://${path.join(pluginDir, "index.html")}`);

  const state = () => page.evaluate((ids) => Object.fromEntries(ids.map((id) => {
    const e = document.getElementById(id);
    return [id, e && { disabled: e.hasAttribute("disabled"), hidden: e.hidden, text: e.textContent }];
  })), [...CONTROLS, "apply", "pair-row"]);

  await page.waitForFunction(() => /Connected/.test(document.getElementById("server-status").textContent), null, { timeout: 20000 });
  // The page's WebSocket carries an Origin (file:// pages send "null"), so even this computer's
  // server asks to pair once, at the first job; the token then outlives the panel's reloads.
  await page.click("#enhance");
  await page.waitForFunction(() => /needs pairing/.test(document.getElementById("server-status").textContent), null, { timeout: 20000 });
  assert.equal(await page.evaluate(() => document.getElementById("pair-row").hidden), false, "pairing row shown");
  await page.evaluate((code) => { document.getElementById("pair-code").value = code; }, server.pairingCode);
  await page.click("#pair-button");
  await page.waitForFunction(() => /Connected/.test(document.getElementById("server-status").textContent), null, { timeout: 20000 });
  assert.equal(await page.evaluate(() => window.__fake.activeDocument.layers.length), 1, "the refused job added nothing");
  let s = await state();
  for (const id of CONTROLS) assert.ok(s[id], `#${id} is missing`);
  assert.equal(s.enhance.disabled, false, "Enhance enabled when connected and idle");
  assert.equal(s.cancel.disabled, true, "Cancel disabled when idle");
  assert.equal(s.apply.hidden, true);
  assert.equal(s["pair-row"].hidden, true, "paired once, the row is gone");
  assert.equal(await page.evaluate(() => document.getElementById("steps").value), "12", "settings restored");
  // the models the server found, drawn under the status (the bundled one is the default)
  await page.waitForFunction(() => /Model in use: /.test(document.getElementById("model-in-use").textContent), null, { timeout: 30000 });
  assert.equal(await page.evaluate(() => getComputedStyle(document.getElementById("models")).display), "flex");
  assert.match(await page.evaluate(() => document.getElementById("model-list").textContent), /Seamwise tiny/);
  const idleShot = path.join(ARTIFACTS, "panel-idle.png");
  await page.screenshot({ path: idleShot });

  // A bad setting is named and nothing starts.
  await page.evaluate(() => { document.getElementById("steps").value = "0"; });
  await page.click("#enhance");
  assert.match(await page.evaluate(() => document.getElementById("message").textContent), /Steps must be a whole number between 1 and 200/);
  assert.equal(await page.evaluate(() => localStorage.getItem("seamwise.activeJob")), null);
  await page.evaluate(() => { document.getElementById("steps").value = "12"; });
  // a negative prompt travels as `negative_prompt` (a server refuses unknown parameters)
  await page.evaluate(() => { document.getElementById("negative-prompt").value = "haze"; });

  // The panel is reloaded while a job renders (a fresh page: the fake document is rebuilt as it was,
  // so this runs first, while the document still has only its background layer).
  await page.click("#enhance");
  await page.waitForFunction(() => /step/.test(document.getElementById("progress-label").textContent), null, { timeout: 20000 });
  const jobBefore = await page.evaluate(() => JSON.parse(localStorage.getItem("seamwise.activeJob")).job);
  await page.reload();
  await page.waitForFunction(() => /Added layer/.test(document.getElementById("message").textContent), null, { timeout: 60000 });
  const resumed = await page.evaluate(() => window.__fake.activeDocument.layers.map((l) => l.name));
  assert.equal(resumed.length, 3, "the resumed job placed its layer");
  assert.ok(resumed[1].endsWith(jobBefore.slice(0, 8)), "the same job, not a new one");
  assert.equal(await page.evaluate(() => localStorage.getItem("seamwise.activeJob")), null);

  await page.click("#enhance");
  await page.waitForFunction(() => !document.getElementById("cancel").hasAttribute("disabled"), null, { timeout: 20000 });
  s = await state();
  assert.equal(s.enhance.disabled, true, "Enhance disabled while a job runs");
  assert.equal(s.mode.disabled, true, "settings locked while a job runs");
  await page.waitForFunction(() => !document.getElementById("preview").hidden, null, { timeout: 30000 });
  const runningShot = path.join(ARTIFACTS, "panel-running.png");
  await page.screenshot({ path: runningShot });

  await page.waitForFunction(() => /Added layer/.test(document.getElementById("message").textContent), null, { timeout: 60000 });
  s = await state();
  assert.equal(s.enhance.disabled, false);
  assert.equal(s.cancel.disabled, true);
  const layers = await page.evaluate(() => window.__fake.activeDocument.layers.map((l) => [l.name, l.visible]));
  assert.equal(layers.length, 5, "two jobs, two layers each");
  const results = layers.filter(([name]) => /^Seamwise refine \S+$/.test(name));
  const seamLayers = layers.filter(([name]) => / seam risk$/.test(name));
  assert.equal(results.length, 2);
  assert.ok(seamLayers.every(([, visible]) => visible === false), "seam-risk layers hidden");
  const active = await page.evaluate(() => window.__fake.activeDocument.activeLayers.map((l) => l.name));
  const message = await page.evaluate(() => document.getElementById("message").textContent);
  assert.ok(message.includes(active[0]), "the new result layer is left selected");
  const doneShot = path.join(ARTIFACTS, "panel-done.png");
  await page.screenshot({ path: doneShot });

  // A job cancelled from the panel.
  await page.click("#enhance");
  await page.waitForFunction(() => /step/.test(document.getElementById("progress-label").textContent), null, { timeout: 20000 });
  await page.click("#cancel");
  await page.waitForFunction(() => /Cancelled/.test(document.getElementById("message").textContent), null, { timeout: 20000 });
  assert.equal(await page.evaluate(() => window.__fake.activeDocument.layers.length), 5, "cancel adds nothing");

  // The server goes away: Refresh says so and Enhance is disabled.
  await server.stop();
  await page.click("#server-refresh");
  await page.waitForFunction(() => /No server/.test(document.getElementById("server-status").textContent), null, { timeout: 20000 });
  s = await state();
  assert.equal(s.enhance.disabled, true, "Enhance disabled without a server");
  const offlineShot = path.join(ARTIFACTS, "panel-offline.png");
  await page.screenshot({ path: offlineShot });

  // A LAN box typed in by hand: it asks for pairing, the code it printed unlocks it.
  const box = await startServer({ lan: true });
  t.after(() => box.stop());
  const options = await page.evaluate(() => Array.from(document.querySelectorAll("#server-menu sp-menu-item")).map((i) => i.textContent));
  assert.equal(options[options.length - 1], "Other address…");
  await page.evaluate((n) => {
    const picker = document.getElementById("server-picker");
    picker.selectedIndex = n;
    picker.dispatchEvent(new Event("change"));
  }, options.length - 1);
  assert.equal(await page.evaluate(() => document.getElementById("address-row").hidden), false);
  await page.evaluate((address) => { document.getElementById("server-address").value = address; }, box.url.replace("http://", ""));
  await page.click("#server-connect");
  await page.waitForFunction(() => /needs pairing/.test(document.getElementById("server-status").textContent), null, { timeout: 20000 }).catch(async (e) => { console.log("DEBUG", await page.evaluate(() => document.getElementById("server-status").textContent + " | " + document.getElementById("message").textContent), server.output.slice(-3000)); throw e; });
  s = await state();
  assert.equal(s["pair-row"].hidden, false, "pairing row shown");
  assert.equal(s.enhance.disabled, true, "Enhance disabled until paired");
  const pairShot = path.join(ARTIFACTS, "panel-pairing.png");
  await page.screenshot({ path: pairShot });
  await page.evaluate((code) => { document.getElementById("pair-code").value = code; }, box.pairingCode);
  await page.click("#pair-button");
  await page.waitForFunction(() => /Connected/.test(document.getElementById("server-status").textContent), null, { timeout: 20000 });
  s = await state();
  assert.equal(s["pair-row"].hidden, true);
  assert.equal(s.enhance.disabled, false);
  assert.deepEqual(errors, [], "no uncaught errors in the page");
  t.diagnostic(`screenshots: ${[idleShot, runningShot, doneShot, offlineShot, pairShot].join(", ")}`);
});
