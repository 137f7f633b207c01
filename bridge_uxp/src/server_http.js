"use strict";
/**
 * The few HTTP calls the panel makes besides the WebSocket: health, info and the models found, the
 * list of render boxes the local server discovered (UXP cannot do mDNS itself), and pairing with a
 * LAN box.
 * `fetch` is injected (UXP's global in the panel, Node's in tests).
 */
const { ServerError, ConnectionLost } = require("./errors");

class ServerApi {
  constructor({ fetch }) {
    this.fetch = fetch;
  }

  async _call(url, path, { method = "GET", token = null, body } = {}) {
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await this.fetch(`${url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ConnectionLost(`Cannot reach ${url}.`);
    }
    let payload = null;
    try {
      payload = await response.json();
    } catch (_) {
      payload = null;
    }
    if (!response.ok) {
      const code = (payload && payload.code) || `http_${response.status}`;
      throw new ServerError(code, (payload && payload.message) || `${url} answered ${response.status}.`);
    }
    return payload;
  }

  /** The server's health, or a ServerError `not_seamwise` when something else answers there
   * (another program on the port). */
  async health(url, token) {
    const answer = await this._call(url, "/v1/health", { token });
    if (!answer || answer.ok !== true || typeof answer.version !== "string") {
      throw new ServerError("not_seamwise", `${url} is not a Seamwise server.`);
    }
    return answer;
  }

  /** What the server says about itself and its machine (/v1/info): model, `model_error`,
   * `advice` and, on a cluster, `cluster`. */
  info(url, token) {
    return this._call(url, "/v1/info", { token });
  }

  /** The models the server found (/v1/models): `{models: [...], in_use}`. */
  models(url, token) {
    return this._call(url, "/v1/models", { token });
  }

  /** Render boxes the server at `url` found on the network; [] from a server without discovery. */
  async peers(url, token) {
    try {
      const answer = await this._call(url, "/v1/peers", { token });
      return (answer && answer.peers) || [];
    } catch (err) {
      if (err.code === "not_found" || err.code === "http_404") return [];
      throw err;
    }
  }

  /** Exchange the code a box shows for a token. */
  pair(url, code, name) {
    const digits = String(code || "").replace(/\s+/g, "");
    if (!/^\d{6}$/.test(digits)) return Promise.reject(new Error("The pairing code has 6 digits."));
    return this._call(url, "/v1/pair", { method: "POST", body: { code: digits, name } });
  }
}

module.exports = { ServerApi };
