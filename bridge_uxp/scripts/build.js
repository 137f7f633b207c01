"use strict";
/**
 * Assemble the installable plugin folder in build/: manifest, HTML, CSS and one bundled main.js
 * (the panel's src/, which has no dependencies; `photoshop`, `uxp`, `fs` and `os` stay host modules).
 * UXP loads the folder as is (UXP Developer Tool → Add Plugin → build/manifest.json), and
 * installer/package_uxp.sh zips it into a .ccx.
 */
const path = require("node:path");
const fs = require("node:fs");
const esbuild = require("esbuild");

const ROOT = path.resolve(__dirname, "..");
const OUT = path.join(ROOT, "build");

async function build(out = OUT) {
  fs.rmSync(out, { recursive: true, force: true });
  fs.mkdirSync(out, { recursive: true });
  await esbuild.build({
    entryPoints: [path.join(ROOT, "src", "main.js")],
    outfile: path.join(out, "main.js"),
    bundle: true,
    format: "iife",
    platform: "browser",
    target: "es2019",
    external: ["photoshop", "uxp", "fs", "os"],
    legalComments: "eof",
    logLevel: "warning",
  });
  for (const file of ["manifest.json", "index.html", "styles.css"]) {
    fs.copyFileSync(path.join(ROOT, file), path.join(out, file));
  }
  return out;
}

if (require.main === module) {
  build(process.argv[2] ? path.resolve(process.argv[2]) : OUT).then(
    (out) => console.log(`Plugin folder: ${out}`),
    (err) => {
      console.error(err.message);
      process.exit(1);
    },
  );
}

module.exports = { build };
