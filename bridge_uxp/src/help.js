"use strict";
/**
 * Connection help: what the panel says when it cannot use the chosen server, in its own words.
 * Pure (no DOM), so every case is tested directly; the panel shows the lines under the status.
 */
const { parseAddress, DEFAULT_PORT } = require("./address");

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/i;

/** How to start the server on this computer, for the platform UXP reports ("darwin", "win32"). */
function startCommand(platform) {
  if (platform === "win32") return "Open PowerShell and run: seamwise serve";
  if (platform === "darwin") return "Open Terminal and run: seamwise serve";
  return "In a terminal, run: seamwise serve (PowerShell on Windows, Terminal on macOS)";
}

/**
 * Lines of help for a server state.
 * @param {object} s
 * @param {string} s.status  "ok" | "offline" | "unauthorized" | "not_seamwise" | "outdated" | ...
 * @param {string} s.url     the chosen server
 * @param {?string} s.platform  os.platform() of this computer, if known
 * @param {number} s.boxes   render boxes the local server found
 * @param {?string} s.error  the server's own sentence, when it gave one
 */
function connectionHelp({ status, url, platform = null, boxes = 0, error = null }) {
  let host = url;
  let port = DEFAULT_PORT;
  try {
    ({ host, port } = parseAddress(url));
  } catch (_) {
    // shown as typed
  }
  const here = LOOPBACK.test(host);
  const where = `${host}:${port}`;
  const lines = [];
  if (status === "offline") {
    if (here) {
      lines.push("Seamwise is not running on this computer.", startCommand(platform));
      lines.push(port === DEFAULT_PORT
        ? `It listens on port ${DEFAULT_PORT}. If you started it with --port, choose Other address… and enter 127.0.0.1 and that port.`
        : `The panel is looking on port ${port}; the server prints the port it listens on when it starts.`);
    } else {
      lines.push(`No answer from ${where}.`,
        "On the render box, start the server with: seamwise serve --lan",
        "Check that this computer is on the same network and that the port is the one the box printed.");
    }
    if (boxes > 0) lines.push(`Your local server found ${boxes} render box${boxes > 1 ? "es" : ""} on the network: pick one in the Server list.`);
  } else if (status === "unauthorized") {
    lines.push(here
      ? "The server on this computer asks this panel to pair once (it accepts no panel it has not paired with)."
      : `${where} asks this panel to pair once.`,
    "The server printed a 6-digit pairing code when it started; run seamwise pair on it for a new one.",
    "Enter the code below and press Pair. The panel remembers the pairing.");
  } else if (status === "not_seamwise") {
    lines.push(`${where} answered, but it is not a Seamwise server: check the port.`,
      `Seamwise listens on ${DEFAULT_PORT} unless it was started with --port.`);
  } else if (status === "outdated") {
    lines.push(error || "The server and this panel speak different protocol versions: update the older one.");
  }
  return lines;
}

module.exports = { connectionHelp, startCommand };
