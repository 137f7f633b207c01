"use strict";
/** The .ccx: built by installer/package_uxp.sh, manifest at its root, only the permissions used. */
const test = require("node:test");
const assert = require("node:assert/strict");
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const path = require("node:path");
const { tempDir } = require("./helpers/server");

const ROOT = path.resolve(__dirname, "..", "..");
const manifest = JSON.parse(fs.readFileSync(path.join(__dirname, "..", "manifest.json"), "utf8"));
const hasZip = ["/usr/bin/zip", "/bin/zip"].some((p) => fs.existsSync(p));

test("manifest v5 for Photoshop 25.0+ asks only for network and the plugin's own files", () => {
  assert.equal(manifest.manifestVersion, 5);
  assert.equal(manifest.host.app, "PS");
  const [major, minor] = manifest.host.minVersion.split(".").map(Number);
  // 24.x shipped the imaging API as Beta (24.2 "Imaging API Beta", 24.4 "available in the Beta
  // build"); 25.0 added Document.selection, which the panel reads the selection's bounds from.
  assert.ok(major >= 25 && minor >= 0, "the imaging API and Document.selection need 25.0");
  assert.deepEqual(Object.keys(manifest.requiredPermissions).sort(), ["localFileSystem", "network"]);
  assert.equal(manifest.requiredPermissions.localFileSystem, "plugin");
  // "all": a LAN render box can sit at any address, and UXP cannot wildcard IP ranges.
  assert.equal(manifest.requiredPermissions.network.domains, "all");
  assert.equal(manifest.entrypoints.length, 1);
  assert.equal(manifest.entrypoints[0].type, "panel");
  assert.equal(manifest.main, "index.html");
});

test("package_uxp.sh builds a .ccx with the manifest at its root", { skip: hasZip ? false : "zip is not installed" }, () => {
  const dist = tempDir("seamwise-dist-");
  const out = execFileSync("bash", [path.join(ROOT, "installer", "package_uxp.sh")], { env: { ...process.env, SEAMWISE_DIST: dist } }).toString().trim().split("\n").pop();
  assert.equal(out, path.join(dist, `seamwise-photoshop-${manifest.version}.ccx`));
  const listing = execFileSync("unzip", ["-Z1", out]).toString().split("\n").filter(Boolean).sort();
  assert.deepEqual(listing, ["index.html", "main.js", "manifest.json", "styles.css"]);
  const main = execFileSync("unzip", ["-p", out, "main.js"]).toString();
  assert.match(main, /require\("photoshop"\)|__require\("photoshop"\)/, "photoshop stays a host module");
  assert.ok(!/node_modules/.test(listing.join()), "no node_modules in the package");
});
