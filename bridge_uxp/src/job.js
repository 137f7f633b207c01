"use strict";
/**
 * One Seamwise job from button press to layer: read → upload → render → download → apply.
 *
 * The runner owns the job record (persisted in localStorage, so a reloaded panel picks the job up
 * again) and the reconnect loop (a dropped socket or a restarted server is followed by `watch`,
 * which says what the server already has). Photoshop I/O lives in photoshop_io.js, frames in
 * connection.js/transfer.js; this file only sequences them.
 */
const { Connection } = require("./connection");
const { uploadStream, downloadStream, isTerminalFor, terminalError, sleep } = require("./transfer");
const { ServerError, ConnectionLost, Cancelled, PhotoshopError } = require("./errors");
const { toBase64 } = require("./codec");
const { Spool } = require("./spool");
const psio = require("./photoshop_io");
const { runsOnCaption } = require("./models");

const RECORD_KEY = "seamwise.activeJob";
const MAX_CHUNK_BYTES = 4 * 1024 * 1024;

function indicesOf(count) {
  return Array.from({ length: count }, (_, i) => i);
}

/** The status line for a progress event: where the job is, its step, and its tile, or its layer
 * when the server evaluates the frame whole, layer by layer (`unit: "operation"`), and on a
 * cluster the box and actor that render it (`runs_on`). */
function progressCaption(m) {
  const where = m.state === "queued" ? `Queued (position ${m.position})` : `${m.phase || "Rendering"}`;
  const detail = m.steps ? ` · step ${m.step}/${m.steps}` : "";
  const part = m.unit === "operation" ? "layer" : "tile";
  const tiles = m.tiles ? ` · ${part} ${m.tile}/${m.tiles}` : "";
  const on = runsOnCaption(m.runs_on);
  return `${where}${detail}${tiles}${on ? ` · ${on}` : ""}`;
}

function jobName(params, job) {
  const what = params.mode === "upscale" ? `upscale x${params.scale || 2}` : "refine";
  return `Seamwise ${what} ${String(job).slice(0, 8)}`;
}

class JobRunner {
  /**
   * @param {object} deps
   * @param {object} deps.ps        the `photoshop` module
   * @param {object} deps.fs        UXP's `fs` module (for result spools)
   * @param {Function} deps.WebSocket
   * @param {Storage} deps.storage  localStorage
   * @param {(url: string) => ?string} deps.tokenFor  bearer token for a server, if paired
   * @param {(update: object) => void} deps.onUpdate  UI callback
   * @param {string} [deps.tempDir] where spools go
   * @param {number} [deps.reconnectForMs] how long a lost server is waited for
   * @param {number} [deps.bandBytes] pixels read from Photoshop at a time
   */
  constructor({ ps, fs, WebSocket, storage, tokenFor = () => null, onUpdate = () => {}, tempDir = "plugin-temp:", reconnectForMs = 120000, bandBytes = psio.BAND_BYTES }) {
    Object.assign(this, { ps, fs, WebSocket, storage, tokenFor, onUpdate, tempDir, reconnectForMs, bandBytes });
    this.record = null;
    this.conn = null;
    this.cancelRequested = false;
    this.wake = null;
    this.spools = {};
    this.source = null;
    this.busy = false;
  }

  static storedRecord(storage) {
    const text = storage.getItem(RECORD_KEY);
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch (_) {
      storage.removeItem(RECORD_KEY);
      return null;
    }
  }

  _persist() {
    this.storage.setItem(RECORD_KEY, JSON.stringify(this.record));
  }

  _update(fields) {
    this.onUpdate({ job: this.record && this.record.job, ...fields });
  }

  _checkCancelled() {
    if (this.cancelRequested) throw new Cancelled();
  }

  /** Start a new job on the active document. Resolves with the outcome ({state, ...}). */
  async start({ serverUrl, params, margin = 64 }) {
    const scale = params.mode === "upscale" ? params.scale || 2 : 1;
    this._update({ phase: "reading", fraction: 0, message: "Reading the document…" });
    const plan = await psio.planJob(this.ps, { margin, scale });
    this.record = { job: null, serverUrl, params: { ...params, scale }, plan, stage: "upload", createdAt: Date.now() };
    return this._drive();
  }

  /** Pick up a job persisted by an earlier panel (after a reload or a Photoshop restart). */
  async resume(record) {
    this.record = record;
    this._update({ phase: "reconnecting", fraction: 0, message: "Resuming the job…" });
    return this._drive();
  }

  /** Ask the job to stop; resolves the running start()/resume() with state "cancelled". */
  cancel() {
    this.cancelRequested = true;
    const job = this.record && this.record.job;
    if (this.conn && !this.conn.closed && job) {
      try {
        this.conn.send({ type: "cancel", job });
      } catch (_) {
        // the socket went away; the local wake-up below still stops the runner
      }
    }
    if (this.conn) this.conn.mailbox.push({ type: "local.cancel", job });
    if (this.wake) this.wake();
    // Nothing running (a result waiting for Apply): drop it here.
    if (!this.busy && this.record) return this._guard(async () => this._checkCancelled());
    return null;
  }

  /** A connection for a short exchange after the job's own socket has gone (best effort). */
  async _talk(exchange) {
    let conn = this.conn && !this.conn.closed ? this.conn : null;
    let own = false;
    try {
      if (!conn) {
        conn = new Connection({ serverUrl: this.record.serverUrl, token: this.tokenFor(this.record.serverUrl), WebSocket: this.WebSocket });
        own = true;
        await conn.open(3000);
      }
      await exchange(conn);
    } catch (_) {
      // the server expires what it keeps; nothing here may stop the panel
    } finally {
      if (own) conn.close();
    }
  }

  /** Place a result that is already spooled (after a modal conflict). */
  async applyPending() {
    return this._guard(async () => {
      await this._apply();
      await this._finish();
      return { state: "done", job: this.record.job };
    });
  }

  async _drive() {
    return this._guard(async () => {
      let lostSince = null;
      let delay = 250;
      for (;;) {
        try {
          this._checkCancelled();
          const conn = await this._connect();
          lostSince = null;
          delay = 250;
          const status = this.record.job ? await this._watch(conn) : await this._create(conn);
          await this._advance(conn, status);
          await this._finish();
          return { state: "done", job: this.record.job, warnings: this.record.warnings || [] };
        } catch (err) {
          if (!(err instanceof ConnectionLost) || this.cancelRequested) throw err;
          lostSince = lostSince || Date.now();
          if (Date.now() - lostSince >= this.reconnectForMs) throw err;
          this._update({ phase: "reconnecting", message: `${err.message} Reconnecting…` });
          await new Promise((resolve) => {
            this.wake = resolve;
            setTimeout(resolve, delay);
          });
          this.wake = null;
          delay = Math.min(delay * 2, 2000);
        }
      }
    });
  }

  /** Turn every ending into an outcome and leave no socket, spool or record behind. */
  async _guard(body) {
    this.busy = true;
    try {
      return await body();
    } catch (err) {
      if (err instanceof Cancelled || this.cancelRequested) {
        await this._abandon();
        this._update({ phase: "cancelled", fraction: 0, message: "Cancelled." });
        return { state: "cancelled", job: this.record && this.record.job };
      }
      if (err instanceof PhotoshopError && (err.code === "modal_busy" || err.code === "apply_cancelled")) {
        this._update({ phase: "apply_pending", message: err.message });
        return { state: "apply_pending", job: this.record.job, error: err };
      }
      const keep = err instanceof ConnectionLost; // the server may still finish it: keep the record
      if (keep) await this._closeSpools();
      else await this._abandon();
      this._update({ phase: "failed", message: err.message, code: err.code });
      return { state: "failed", job: this.record && this.record.job, error: err };
    } finally {
      this._closeConnection();
      this.busy = false;
    }
  }

  async _connect() {
    this._closeConnection();
    const conn = new Connection({
      serverUrl: this.record.serverUrl,
      token: this.tokenFor(this.record.serverUrl),
      WebSocket: this.WebSocket,
      onEvent: (m) => this._event(m),
    });
    this.conn = conn;
    await conn.open();
    return conn;
  }

  _closeConnection() {
    if (this.conn) this.conn.close();
    this.conn = null;
  }

  _event(m) {
    if (!this.record || m.job !== this.record.job) return;
    if (m.type === "preview" && m.jpeg) {
      this._update({ preview: `data:image/jpeg;base64,${toBase64(m.jpeg)}` });
      return;
    }
    this._update({ phase: m.state || "running", fraction: m.fraction || 0, message: progressCaption(m) });
  }

  async _openSources() {
    if (this.source) return this.source;
    const { plan } = this.record;
    const layer = await psio.openLayerSource(this.ps, plan, { bandBytes: this.bandBytes });
    let mask = null;
    if (plan.selection) mask = await this._maskSpool(plan, layer.width, layer.height);
    this.source = { layer, mask };
    return this.source;
  }

  /**
   * The selection as sent is kept in a spool: it is uploaded from there and, at the end, becomes
   * the layer mask, even if the user changed the selection meanwhile.
   */
  async _maskSpool(plan, width, height) {
    const path = `${this.tempDir}/seamwise-mask-${this.record.createdAt}.bin`;
    if (this.spools.mask) return this.spools.mask;
    const spool = await Spool.create(this.fs, path, width * height);
    const selection = psio.openSelectionSource(this.ps, plan, { bandBytes: this.bandBytes });
    for (let top = 0; top < height; top += selection.bandRows) {
      const rows = Math.min(selection.bandRows, height - top);
      await spool.write(await selection.read(top * width, rows * width), top * width);
    }
    selection.release();
    this.spools.mask = spool;
    return spool;
  }

  async _create(conn) {
    const { plan, params } = this.record;
    const { layer, mask } = await this._openSources();
    const chunkBytes = Math.min(conn.limits.max_chunk_bytes || MAX_CHUNK_BYTES, MAX_CHUNK_BYTES);
    const req = `create-${this.record.createdAt}`;
    conn.send({
      type: "job.create",
      req,
      params,
      image: imageHeader(layer, plan),
      mask: mask ? { width: layer.width, height: layer.height } : null,
      chunk_bytes: chunkBytes,
    });
    const answer = await conn.take((m) => (m.type === "job.accepted" && m.req === req) || (m.type === "error" && (m.req === req || m.fatal)));
    if (answer.type === "error") throw new ServerError(answer.code, answer.message, answer);
    Object.assign(this.record, {
      job: answer.job,
      name: jobName(params, answer.job),
      streams: answer.streams,
      window: answer.window,
      chunkBytes,
      channels: layer.channels,
      colorProfile: layer.colorProfile,
    });
    this._persist();
    const missing = { image: indicesOf(answer.streams.image.chunks) };
    if (answer.streams.mask) missing.mask = indicesOf(answer.streams.mask.chunks);
    return { state: "uploading", missing };
  }

  async _watch(conn) {
    const job = this.record.job;
    conn.send({ type: "watch", job });
    const m = await conn.take((x) => (x.type === "job.status" && x.job === job) || isTerminalFor(job)(x));
    if (m.type !== "job.status") throw terminalError(m);
    return m;
  }

  async _advance(conn, status) {
    const job = this.record.job;
    const terminal = isTerminalFor(job);
    if (status.state === "failed") {
      const error = status.error || {};
      throw new ServerError(error.code || "render_failed", error.message || "The render failed.", status);
    }
    if (status.state === "cancelled") throw new Cancelled();
    if (status.state === "uploading") {
      await this._upload(conn, status.missing || {});
      status = await conn.take((m) => (m.job === job && (m.type === "job.queued" || m.type === "job.done")) || terminal(m));
      if (terminal(status)) throw terminalError(status);
      if (status.type === "job.queued") status = { state: "queued", position: status.position };
    }
    if (status.state === "queued" || status.state === "running") {
      // a resumed job's status already says where a cluster runs it (`progress.runs_on`)
      const on = runsOnCaption(status.progress && status.progress.runs_on);
      this._update({ phase: status.state, fraction: 0, message: status.state === "queued" ? `Queued (position ${status.position || 0})` : `Rendering…${on ? ` · ${on}` : ""}` });
      status = await conn.take((m) => (m.type === "job.done" && m.job === job) || terminal(m));
      if (terminal(status)) throw terminalError(status);
    }
    if (status.type !== "job.done" && status.state !== "done") {
      throw new ServerError("bad_request", `Unexpected job state ${status.state || status.type}.`);
    }
    await this._download(conn, status);
    this.record.stage = "apply";
    this._persist();
    await this._apply();
  }

  async _upload(conn, missing) {
    const { streams, window, chunkBytes } = this.record;
    const { layer, mask } = await this._openSources();
    const total = streams.image.chunks + (streams.mask ? streams.mask.chunks : 0);
    let sent = total - (missing.image || []).length - (missing.mask || []).length;
    const progress = () => {
      sent += 1;
      this._update({ phase: "uploading", fraction: sent / total, message: `Sending ${Math.round((100 * sent) / total)}%` });
    };
    this._update({ phase: "uploading", fraction: sent / total, message: "Sending…" });
    const common = { job: this.record.job, chunkBytes, window, onChunk: progress };
    await uploadStream(conn, { ...common, stream: "image", bytes: streams.image.bytes, indices: missing.image || [], read: (o, n) => layer.source.read(o, n) });
    layer.source.release();
    if (streams.mask && mask) {
      await uploadStream(conn, { ...common, stream: "mask", bytes: streams.mask.bytes, indices: missing.mask || [], read: (o, n) => mask.read(o, n) });
    }
  }

  async _download(conn, done) {
    const job = this.record.job;
    this.record.result = done.result;
    this.record.seams = done.seams;
    this.record.warnings = done.warnings || [];
    const total = done.result.chunks + done.seams.chunks;
    let got = 0;
    for (const stream of ["result", "seams"]) {
      const info = done[stream];
      let spool = this.spools[stream];
      if (!spool) {
        spool = await Spool.create(this.fs, `${this.tempDir}/seamwise-${stream}-${this.record.createdAt}.bin`, info.bytes);
        this.spools[stream] = spool;
      }
      const from = Math.floor(spool.written / info.chunk_bytes);
      got += from;
      await downloadStream(conn, {
        job,
        stream,
        bytes: info.bytes,
        chunkBytes: info.chunk_bytes,
        chunks: info.chunks,
        from,
        write: async (data, index) => {
          await spool.write(data, index * info.chunk_bytes);
          got += 1;
          this._update({ phase: "downloading", fraction: got / total, message: `Receiving ${Math.round((100 * got) / total)}%` });
        },
      });
    }
  }

  async _apply() {
    this._checkCancelled();
    const { plan, result, seams, name } = this.record;
    const { result: resultSpool, seams: seamSpool } = this.spools;
    if (!resultSpool || !resultSpool.complete || !seamSpool || !seamSpool.complete) {
      throw new PhotoshopError("incomplete", "The result has not fully arrived; it will not be placed.");
    }
    let mask = null;
    if (plan.selection) mask = this.spools.mask || (await this._openSources()).mask;
    this._update({ phase: "applying", fraction: 1, message: "Placing the result…" });
    await psio.writeResult(this.ps, plan, {
      name,
      result: { ...result, colorProfile: this.record.colorProfile, read: (o, n) => resultSpool.read(o, n) },
      seams: { width: seams.width, height: seams.height, read: (o, n) => seamSpool.read(o, n) },
      mask,
    });
  }

  async _finish() {
    const job = this.record.job;
    await this._talk(async (conn) => {
      conn.send({ type: "release", job });
      await conn.take((m) => (m.type === "released" || m.type === "error") && m.job === job, 5000);
    });
    await this._removeSpools();
    this.storage.removeItem(RECORD_KEY);
    this._update({ phase: "done", fraction: 1, message: doneMessage(this.record.name, this.record.warnings) });
  }

  /** Cancel or failure: tell the server (if it listens), drop local state. */
  async _abandon() {
    const job = this.record && this.record.job;
    if (job) {
      await this._talk(async (conn) => {
        if (!this.cancelRequested || conn !== this.conn) conn.send({ type: "cancel", job });
        const ended = ["job.cancelled", "job.failed", "job.done", "job.status", "error"];
        await conn.take((m) => m.job === job && ended.includes(m.type), 3000);
        conn.send({ type: "release", job });
        await conn.take((m) => m.job === job && (m.type === "released" || m.type === "error"), 3000);
      });
    }
    await this._removeSpools();
    this.storage.removeItem(RECORD_KEY);
  }

  async _closeSpools() {
    for (const key of Object.keys(this.spools)) await this.spools[key].close();
    this.spools = {};
  }

  async _removeSpools() {
    for (const key of Object.keys(this.spools)) await this.spools[key].remove();
    this.spools = {};
    if (this.source) this.source.layer.source.release();
    this.source = null;
  }
}

/**
 * The job's image header. UXP gives the document's profile by name only, so the panel sends the
 * name and the server builds the standard profiles (PROTOCOL.md, section 1); no ICC bytes.
 */
function imageHeader(layer, plan) {
  return { width: layer.width, height: layer.height, channels: layer.channels, depth: plan.depth, icc: null, profile: layer.colorProfile || null };
}

/** The closing status line: the new layer, and what the server warned about (an unknown profile). */
function doneMessage(name, warnings) {
  const notes = (warnings || []).map((w) => ` Note: ${w.charAt(0).toUpperCase()}${w.slice(1)}.`).join("");
  return `Added layer "${name}".${notes}`;
}

module.exports = { JobRunner, RECORD_KEY, jobName, progressCaption, imageHeader, doneMessage };
