"use strict";
/**
 * The panel's UI: binds the Spectrum widgets in index.html to the server checks, pairing and the
 * JobRunner. `controlStates` (pure) decides what is enabled; `Panel` only reads and writes DOM
 * properties that UXP's Spectrum widgets and plain HTML elements share (value, selectedIndex,
 * disabled, hidden), so the same code runs in Photoshop and in a test browser.
 */
const { JobRunner } = require("./job");
const { ServerApi } = require("./server_http");
const { normaliseUrl } = require("./address");
const { PhotoshopError } = require("./errors");
const { connectionHelp } = require("./help");
const { modelRows, restartNote, adviceLines, clusterLoad } = require("./models");

const LOCAL_URL = "http://127.0.0.1:7821";
const SETTINGS_KEY = "seamwise.settings";
const BUSY = new Set(["reading", "uploading", "queued", "running", "downloading", "applying", "reconnecting"]);
const MODES = ["refine", "upscale"];
const STRATEGIES = ["memory", "mixture", "multidiffusion", "spot", "naive"];
// Shown until the server says what its model recommends (`recommended` in /v1/health).
const FALLBACK = { strength: 0.35, steps: 8 };

/** What each control does in a given state. Pure: tested without a DOM. */
function controlStates({ server, phase }) {
  const busy = BUSY.has(phase);
  const pending = phase === "apply_pending";
  const ready = server.status === "ok";
  return {
    enhance: { disabled: busy || pending || !ready, hidden: pending },
    apply: { disabled: busy, hidden: !pending },
    cancel: { disabled: !(busy || pending) },
    settings: { disabled: busy || pending },
    server: { disabled: busy || pending },
    pairRow: { hidden: server.status !== "unauthorized" },
  };
}

/** What a failed check or a refused connection says about the server. Pure. */
function serverStatusOf(err) {
  const code = err && err.code;
  if (code === "unauthorized" || code === "http_401") return "unauthorized";
  if (code === "not_seamwise") return "not_seamwise";
  if (code === "protocol_version") return "outdated";
  return "offline";
}

/** The server model's recommended strength and steps for a mode (`recommended` in /v1/health). Pure. */
function recommendedFor(info, mode) {
  const rec = info && info.recommended;
  const r = rec && rec[mode === "upscale" ? "x2" : "refine"];
  return r && Number.isFinite(r.strength) && Number.isInteger(r.steps) ? { strength: r.strength, steps: r.steps } : FALLBACK;
}

/** What to keep of a value the user left or typed: null (follow the model) while it is still the
 * recommendation and the user never chose another, else the value. Pure. */
function remembered(previous, typed, recommended) {
  return previous == null && typed === recommended ? null : typed;
}

function secretText(bytes) {
  if (bytes == null) return null;
  if (typeof bytes === "string") return bytes;
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

class Panel {
  constructor({ document, ps, fs, uxp, WebSocket, fetch, storage, hostName = "Photoshop", platform = null }) {
    Object.assign(this, { document, ps, fs, uxp, WebSocket, storage, hostName, platform });
    this.api = new ServerApi({ fetch });
    this.el = (id) => document.getElementById(id);
    this.settings = this._loadSettings();
    this.tokens = {};
    this.peers = [];
    this.server = { url: this.settings.serverUrl, status: "unknown", info: null };
    this.details = { info: null, models: null }; // /v1/info and /v1/models of the chosen server
    this.phase = "idle";
    this.runner = null;
  }

  async start() {
    this._bind();
    this._showSettings();
    this._render();
    await this._loadToken(this.server.url);
    const record = JobRunner.storedRecord(this.storage);
    if (record && record.serverUrl !== this.server.url) {
      this.server.url = record.serverUrl; // go back to the server that has the job
      await this._loadToken(record.serverUrl);
    }
    await this.refresh();
  }

  // ---- settings ------------------------------------------------------------------------
  _loadSettings() {
    // strength/steps null = "what the server's model recommends" until the user picks others.
    const defaults = { localUrl: LOCAL_URL, serverUrl: LOCAL_URL, mode: "refine", strength: null, steps: null, seed: 0, strategy: "memory", prompt: "", negativePrompt: "" };
    try {
      return { ...defaults, ...JSON.parse(this.storage.getItem(SETTINGS_KEY) || "{}") };
    } catch (_) {
      return defaults;
    }
  }

  _saveSettings() {
    this.storage.setItem(SETTINGS_KEY, JSON.stringify(this.settings));
  }

  _recommended() {
    return recommendedFor(this.server.info, MODES[Math.max(0, this.el("mode").selectedIndex)]);
  }

  /** Fields the user never changed follow the model's recommendation (1 step for the bundled
   * model: eight would take eight times as long for the same result). */
  _showModelDefaults() {
    const rec = this._recommended();
    if (this.settings.strength == null) this.el("strength").value = rec.strength;
    if (this.settings.steps == null) this.el("steps").value = String(rec.steps);
  }

  _showSettings() {
    const s = this.settings;
    this._select("mode", MODES.indexOf(s.mode));
    if (s.strength != null) this.el("strength").value = s.strength;
    if (s.steps != null) this.el("steps").value = String(s.steps);
    this._showModelDefaults();
    this.el("seed").value = String(s.seed);
    this._select("strategy", STRATEGIES.indexOf(s.strategy));
    this.el("prompt").value = s.prompt;
    this.el("negative-prompt").value = s.negativePrompt;
  }

  /** Read and check the settings the user typed; throws a message naming the bad field. */
  _readParams() {
    const number = (id, lo, hi, integer) => {
      const v = Number(this.el(id).value);
      if (!Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v))) {
        throw new Error(`${id[0].toUpperCase()}${id.slice(1)} must be ${integer ? "a whole number " : ""}between ${lo} and ${hi}.`);
      }
      return v;
    };
    const s = {
      mode: MODES[Math.max(0, this.el("mode").selectedIndex)],
      strength: number("strength", 0.01, 1, false), // the server refuses 0: nothing would change
      steps: number("steps", 1, 200, true),
      seed: number("seed", 0, 4294967295, true),
      strategy: STRATEGIES[Math.max(0, this.el("strategy").selectedIndex)],
      prompt: String(this.el("prompt").value || "").slice(0, 2000),
      negativePrompt: String(this.el("negative-prompt").value || "").slice(0, 2000),
    };
    const rec = this._recommended();
    Object.assign(this.settings, s, {
      strength: remembered(this.settings.strength, s.strength, rec.strength),
      steps: remembered(this.settings.steps, s.steps, rec.steps),
    });
    this._saveSettings();
    const { negativePrompt, ...params } = s;
    return { ...params, ...(negativePrompt ? { negative_prompt: negativePrompt } : {}), ...(s.mode === "upscale" ? { scale: 2 } : {}) };
  }

  // ---- server --------------------------------------------------------------------------
  /** The token kept for `url`, if any. secureStorage may reject for a key it does not have (or
   * when the keychain is locked): start-up never depends on it, the server then asks to pair. */
  async _loadToken(url) {
    const secure = this.uxp && this.uxp.storage && this.uxp.storage.secureStorage;
    if (!secure || url in this.tokens) return;
    try {
      this.tokens[url] = secretText(await secure.getItem(`seamwise.token ${url}`));
    } catch (_) {
      this.tokens[url] = null;
    }
  }

  async _saveToken(url, token) {
    this.tokens[url] = token;
    await this.uxp.storage.secureStorage.setItem(`seamwise.token ${url}`, token);
  }

  /** Check the chosen server and list the boxes the local server knows. */
  async refresh() {
    const url = this.server.url;
    this.server = { url, status: "checking", info: null };
    this.details = { info: null, models: null };
    this._renderModels();
    this._render();
    try {
      const info = await this.api.health(url, this.tokens[url]);
      this.server = { url, status: "ok", info };
      this._showModelDefaults();
    } catch (err) {
      this.server = { url, status: serverStatusOf(err), info: null, error: err.message };
    }
    try {
      const local = this.settings.localUrl;
      await this._loadToken(local);
      this.peers = await this.api.peers(local, this.tokens[local]);
    } catch (_) {
      this.peers = [];
    }
    this._fillServerMenu();
    this._render();
    await this._loadDetails();
    this._resumeStored();
  }

  /** The server's models and what it says about itself (model error, advice, cluster load), each
   * shown as soon as it answers (/v1/info asks the machine, which can take a moment). Either call
   * may fail (an older server, a dropped link): the panel then shows less, never an error. */
  async _loadDetails() {
    const { url } = this.server;
    const token = this.tokens[url];
    const load = async (key, call) => {
      let value = null;
      try {
        value = await call.call(this.api, url, token);
      } catch (_) {
        value = null;
      }
      if (url !== this.server.url) return; // another server was chosen meanwhile
      this.details = { ...this.details, [key]: value };
      this._renderModels();
      this._render();
    };
    if (this.server.status !== "ok") return;
    await Promise.all([load("models", this.api.models), load("info", this.api.info)]);
  }

  /** A job left by a reloaded panel, or by a server that was away too long, goes on. */
  _resumeStored() {
    if (BUSY.has(this.phase) || this.phase === "apply_pending") return;
    const record = JobRunner.storedRecord(this.storage);
    if (!record || !record.job || record.serverUrl !== this.server.url || this.server.status !== "ok") return;
    this._run((runner) => runner.resume(record));
  }

  async _choose(url) {
    this.server = { url, status: "unknown", info: null };
    this.settings.serverUrl = url;
    this._saveSettings();
    await this._loadToken(url);
    await this.refresh();
  }

  async _pair() {
    const url = this.server.url;
    try {
      const answer = await this.api.pair(url, this.el("pair-code").value, `${this.hostName} panel`);
      await this._saveToken(url, answer.token);
      this.el("pair-code").value = "";
      this._message("Paired. This panel can now use the box.");
      await this.refresh();
    } catch (err) {
      this._message(err.message, true);
    }
  }

  _serverChoices() {
    const choices = [{ label: "This computer", url: this.settings.localUrl }];
    for (const p of this.peers) {
      const host = String(p.address).includes(":") ? `[${p.address}]` : p.address;
      const where = `${host}:${p.port}`;
      choices.push({ label: `${p.name} (${where})${p.online === false ? " – offline" : ""}`, url: normaliseUrl(where) });
    }
    if (!choices.some((c) => c.url === this.server.url)) choices.push({ label: this.server.url.replace(/^https?:\/\//, ""), url: this.server.url });
    choices.push({ label: "Other address…", url: null });
    return choices;
  }

  _fillServerMenu() {
    const menu = this.el("server-menu");
    while (menu.firstChild) menu.removeChild(menu.firstChild);
    this.choices = this._serverChoices();
    this.choices.forEach((c) => {
      const item = this.document.createElement("sp-menu-item");
      item.textContent = c.label;
      menu.appendChild(item);
    });
    this._select("server-picker", this.choices.findIndex((c) => c.url === this.server.url));
  }

  // ---- jobs ----------------------------------------------------------------------------
  async enhance() {
    let params;
    try {
      params = this._readParams();
    } catch (err) {
      this._message(err.message, true);
      return;
    }
    await this._run((runner) => runner.start({ serverUrl: this.server.url, params }));
  }

  async _run(body) {
    this.preview(null);
    this._message("");
    this.runner = new JobRunner({
      ps: this.ps,
      fs: this.fs,
      WebSocket: this.WebSocket,
      storage: this.storage,
      tokenFor: (url) => this.tokens[url] || null,
      onUpdate: (u) => this._onUpdate(u),
    });
    let outcome;
    try {
      outcome = await body(this.runner);
    } catch (err) {
      const known = err instanceof PhotoshopError;
      this._onUpdate({ phase: "failed", message: known ? err.message : `Could not start: ${err.message}` });
      return { state: "failed", error: err };
    }
    const code = outcome && outcome.error && outcome.error.code;
    if (code === "unauthorized" || code === "protocol_version") {
      // the WebSocket was refused (close 4401, or another protocol): show the step that helps
      this.server = { ...this.server, status: serverStatusOf(outcome.error), error: outcome.error.message };
      this._render();
    }
    return outcome;
  }

  _onUpdate(u) {
    const before = this.phase;
    if (u.phase) this.phase = u.phase;
    // the cluster's load and the model's state change when a job starts or ends
    if (this.phase !== before && ["running", "done", "failed"].includes(this.phase)) this._loadDetails().catch(() => {});
    if (u.preview) this.preview(u.preview);
    if (this.phase === "cancelled" || this.phase === "failed") this.preview(null);
    if (u.fraction !== undefined) this.el("progress").value = Math.round(100 * u.fraction);
    if (u.message !== undefined) {
      const done = ["done", "failed", "cancelled", "apply_pending"].includes(this.phase);
      if (done) {
        this.el("progress-label").textContent = "";
        this._message(u.message, this.phase === "failed" || this.phase === "apply_pending");
      } else this.el("progress-label").textContent = u.message;
    }
    this._render();
  }

  preview(dataUrl) {
    const img = this.el("preview");
    if (dataUrl) {
      img.src = dataUrl;
      img.hidden = false;
    } else {
      img.hidden = true;
      img.removeAttribute("src");
    }
  }

  _message(text, isError = false) {
    const m = this.el("message");
    m.textContent = text;
    m.className = isError ? "error" : "";
  }

  // ---- DOM -----------------------------------------------------------------------------
  _select(id, index) {
    const picker = this.el(id);
    const items = picker.querySelectorAll("sp-menu-item");
    items.forEach((item, i) => (i === index ? item.setAttribute("selected", "") : item.removeAttribute("selected")));
    picker.selectedIndex = index;
  }

  _set(id, { disabled, hidden }) {
    const e = this.el(id);
    if (disabled !== undefined) {
      if (disabled) e.setAttribute("disabled", "");
      else e.removeAttribute("disabled");
      e.disabled = disabled;
    }
    if (hidden !== undefined) e.hidden = hidden;
  }

  _render() {
    const states = controlStates({ server: this.server, phase: this.phase });
    this._set("enhance", states.enhance);
    this._set("apply", states.apply);
    this._set("cancel", states.cancel);
    for (const id of ["mode", "strength", "steps", "seed", "seed-random", "strategy", "prompt", "negative-prompt"]) this._set(id, states.settings);
    for (const id of ["server-picker", "server-refresh", "server-address", "server-connect"]) this._set(id, states.server);
    this._set("pair-row", states.pairRow);
    const dot = this.el("status-dot");
    const s = this.server;
    const host = s.url.replace(/^https?:\/\//, "");
    const load = clusterLoad(this.details.info && this.details.info.cluster);
    const text = {
      unknown: `Not checked yet (${host})`,
      checking: `Checking ${host}…`,
      ok: (s.info ? `Connected to ${host} · ${s.info.model} on ${s.info.device}` : `Connected to ${host}`) + (load ? ` · ${load}` : ""),
      unauthorized: `${host} needs pairing: enter the code the server shows.`,
      offline: `No server at ${host}.`,
      not_seamwise: `${host} is not a Seamwise server.`,
      outdated: `${host} speaks another protocol version.`,
    }[s.status];
    this.el("server-status").textContent = text;
    const help = connectionHelp({ status: s.status, url: s.url, platform: this.platform, boxes: this.peers.length, error: s.error });
    const helpBox = this.el("connection-help");
    helpBox.textContent = help.join("\n");
    helpBox.hidden = help.length === 0;
    dot.className = `dot ${{ ok: "ok", unauthorized: "warn", offline: "bad", not_seamwise: "bad", outdated: "bad" }[s.status] || ""}`;
  }

  /** The model in use, the models found (unsupported ones greyed with their note, the default
   * marked), a restart note when the default is another model, and the server's advice when it
   * cannot render. */
  _renderModels() {
    const { info, models } = this.details;
    const inUse = (models && models.in_use) || (info && info.model);
    this.el("model-in-use").textContent = inUse ? `Model in use: ${inUse}` : "";
    const list = this.el("model-list");
    while (list.firstChild) list.removeChild(list.firstChild);
    for (const row of modelRows(models)) {
      const item = this.document.createElement("sp-detail");
      item.textContent = row.text;
      item.className = ["model", row.supported ? "" : "unsupported", row.isDefault ? "default" : ""].filter(Boolean).join(" ");
      list.appendChild(item);
    }
    const note = restartNote(models);
    this.el("model-restart").textContent = note || "";
    this.el("model-restart").hidden = !note;
    const advice = adviceLines(info, this.phase === "failed");
    this.el("model-advice").textContent = advice.join("\n");
    this.el("model-advice").hidden = advice.length === 0;
    this.el("models").hidden = !inUse && advice.length === 0;
  }

  _bind() {
    this.el("enhance").addEventListener("click", () => this.enhance());
    this.el("cancel").addEventListener("click", () => this.runner && this.runner.cancel());
    this.el("apply").addEventListener("click", () => this.runner && this.runner.applyPending());
    this.el("server-refresh").addEventListener("click", () => this.refresh());
    this.el("pair-button").addEventListener("click", () => this._pair());
    this.el("mode").addEventListener("change", () => this._showModelDefaults());
    this.el("seed-random").addEventListener("click", () => {
      this.el("seed").value = String(Math.floor(Math.random() * 4294967296));
    });
    this.el("server-picker").addEventListener("change", () => {
      const choice = this.choices[this.el("server-picker").selectedIndex];
      const manual = !choice || choice.url === null;
      this.el("address-row").hidden = !manual;
      if (!manual && choice.url !== this.server.url) this._choose(choice.url);
    });
    this.el("server-connect").addEventListener("click", () => {
      try {
        this._choose(normaliseUrl(this.el("server-address").value));
        this.el("address-row").hidden = true;
      } catch (err) {
        this._message(err.message, true);
      }
    });
  }
}

module.exports = { Panel, controlStates, recommendedFor, remembered, serverStatusOf, LOCAL_URL };
