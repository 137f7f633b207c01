"use strict";
/**
 * The document's colour profile travels by name (UXP has no profile bytes) to a real server with
 * the bundled model: the server converts the standard ones for the model, and a name it cannot
 * build comes back as a warning in the panel's closing message.
 */
const test = require("node:test");
const assert = require("node:assert/strict");
const { startServer, serverAvailable } = require("./helpers/server");
const { pattern, makeRunner } = require("./helpers/scene");
const { imageHeader, doneMessage } = require("../src/job");

const skip = serverAvailable() ? false : "the Seamwise server (.venv and server/ at the repository root) is not available";
const PARAMS = { mode: "refine", strength: 0.5, steps: 1, seed: 3, strategy: "memory", prompt: "" };

let server;
test.before(async () => {
  if (!skip) server = await startServer({ engine: "real", timeoutMs: 120000 });
});
test.after(async () => {
  if (server) await server.stop();
});

test("the image header names the document's profile and carries no ICC bytes", () => {
  const header = imageHeader({ width: 4, height: 3, channels: 3, colorProfile: "ProPhoto RGB" }, { depth: 16 });
  assert.deepEqual(header, { width: 4, height: 3, channels: 3, depth: 16, icc: null, profile: "ProPhoto RGB" });
  assert.equal(imageHeader({ width: 4, height: 3, channels: 4, colorProfile: "" }, { depth: 8 }).profile, null);
});

test("the closing message carries the server's warnings", () => {
  assert.equal(doneMessage("Seamwise", []), 'Added layer "Seamwise".');
  assert.equal(doneMessage("Seamwise", ["the colour profile 'X' is unknown"]), "Added layer \"Seamwise\". Note: The colour profile 'X' is unknown.");
});

async function runOn(profile, depth) {
  const { runner, fake, updates } = makeRunner();
  fake.addDocument({ width: 64, height: 48, depth, fill: pattern(depth), profile });
  const outcome = await runner.start({ serverUrl: server.url, params: PARAMS, margin: 0 });
  assert.equal(outcome.state, "done", outcome.error && outcome.error.stack);
  return { outcome, message: updates[updates.length - 1].message };
}

for (const [profile, depth] of [["ProPhoto RGB", 16], ["Adobe RGB (1998)", 8], ["Display P3", 32]]) {
  test(`a ${depth}-bit ${profile} document is converted by the server without a warning`, { skip, timeout: 120000 }, async () => {
    const { outcome, message } = await runOn(profile, depth);
    assert.deepEqual(outcome.warnings, []);
    assert.doesNotMatch(message, /Note:/);
  });
}

test("a custom profile name comes back as one warning, and the layer is still added", { skip, timeout: 120000 }, async () => {
  const { outcome, message } = await runOn("Studio Monitor 2026", 16);
  assert.equal(outcome.warnings.length, 1);
  assert.match(outcome.warnings[0], /Studio Monitor 2026/);
  assert.match(message, /^Added layer ".*"\. Note: The colour profile 'Studio Monitor 2026' is not one the server knows/);
});
