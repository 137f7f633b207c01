"use strict";
/**
 * Server addresses as the user types them ("192.168.1.20", "box.local:7821", "http://…").
 * Parsed by hand rather than with `URL`, which not every UXP version provides.
 */
const DEFAULT_PORT = 7821;

/** → {scheme: "http"|"https", host, port} or an Error naming the problem. */
function parseAddress(text) {
  const raw = String(text || "").trim();
  if (!raw) throw new Error("Enter a server address, like 192.168.1.20:7821.");
  const m = /^(?:([a-z][a-z0-9+.-]*):\/\/)?(\[[0-9a-f:.]+\]|[^\s/:?#[\]@]+)(?::(\d{1,5}))?(?:[/?#].*)?$/i.exec(raw);
  if (!m) throw new Error(`"${raw}" is not a server address.`);
  const scheme = (m[1] || "http").toLowerCase();
  if (scheme !== "http" && scheme !== "https") throw new Error(`Unsupported address ${raw}: use http.`);
  const port = m[3] ? Number(m[3]) : scheme === "https" ? 443 : DEFAULT_PORT;
  if (!(port >= 1 && port <= 65535)) throw new Error(`Port ${m[3]} is out of range.`);
  return { scheme, host: m[2].toLowerCase(), port };
}

/** Canonical http(s)://host:port of a server. */
function normaliseUrl(text) {
  const { scheme, host, port } = parseAddress(text);
  return `${scheme}://${host}:${port}`;
}

/** The protocol's WebSocket endpoint of a server. */
function websocketUrl(text) {
  const { scheme, host, port } = parseAddress(text);
  return `${scheme === "https" ? "wss" : "ws"}://${host}:${port}/v1/ws`;
}

module.exports = { parseAddress, normaliseUrl, websocketUrl, DEFAULT_PORT };
