"use strict";
/**
 * Start the real Seamwise server on loopback for a test: `python -m server serve --port 0` from
 * the repository's virtual environment, with the identity engine and a temporary data folder.
 */
const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const REPO = path.resolve(__dirname, "..", "..", "..");
const PYTHON = process.env.SEAMWISE_PYTHON || path.join(REPO, ".venv", "bin", "python");

function serverAvailable() {
  return fs.existsSync(PYTHON) && fs.existsSync(path.join(REPO, "server", "__main__.py"));
}

function tempDir(prefix = "seamwise-test-") {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/**
 * @returns {Promise<{url, port, dataDir, pairingCode, stop, kill, output}>}
 */
async function startServer({ dataDir = tempDir(), lan = false, identityDelay = 0, port = 0, timeoutMs = 60000, engine = "identity" } = {}) {
  const args = ["-m", "server", "serve", "--port", String(port), "--engine", engine, "--data-dir", dataDir, "--no-discovery"];
  if (lan) args.push("--lan", "--host", "127.0.0.1");
  if (identityDelay) args.push("--identity-delay", String(identityDelay));
  const child = spawn(PYTHON, args, {
    cwd: REPO,
    env: { ...process.env, OMP_NUM_THREADS: "1", HF_HUB_OFFLINE: "1", PYTHONUNBUFFERED: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  let pairingCode = null;
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const scan = (chunk) => {
      output += chunk.toString();
      const code = /Pairing code[^:]*:\s*(\d{6})/.exec(output);
      if (code) pairingCode = code[1];
      const m = /Seamwise listening on (http:\/\/[^\s:]+:(\d+))/.exec(output);
      // stderr (the pairing code) and stdout (the address) are separate pipes: wait for both
      if (m && (!lan || pairingCode)) {
        clearTimeout(timer);
        resolve({ url: m[1], port: Number(m[2]) });
      }
    };
    child.stdout.on("data", scan);
    child.stderr.on("data", scan);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}:\n${output}`));
    });
  });
  const { url, port: bound } = await ready;
  const exited = new Promise((resolve) => child.on("exit", resolve));
  return {
    url,
    port: bound,
    dataDir,
    get pairingCode() {
      return pairingCode;
    },
    get output() {
      return output;
    },
    /** Stop like Ctrl-C would. */
    async stop() {
      if (child.exitCode === null) child.kill("SIGINT");
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
      if (child.exitCode === null) child.kill("SIGKILL");
      await exited;
    },
    /** Kill without warning: a crash or a power cut. */
    async kill() {
      if (child.exitCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** `seamwise pair` against a data folder: a fresh one-time code. */
function newPairingCode(dataDir) {
  const { execFileSync } = require("node:child_process");
  const out = execFileSync(PYTHON, ["-m", "server", "pair", "--data-dir", dataDir], { cwd: REPO }).toString();
  const m = /(\d{6})/.exec(out);
  if (!m) throw new Error(`no code in: ${out}`);
  return m[1];
}

module.exports = { startServer, serverAvailable, tempDir, newPairingCode, REPO, PYTHON };
