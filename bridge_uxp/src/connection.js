"use strict";
/**
 * One WebSocket session with a Seamwise server: hello/welcome, message routing and a mailbox.
 *
 * The WebSocket constructor is injected (UXP's global in the panel, the `ws` package in tests), so
 * the same code runs in Photoshop and in Node. Job logic lives in job.js; this file only knows
 * frames.
 */
const { encodeFrame, decodeFrame } = require("./codec");
const { ServerError, ConnectionLost } = require("./errors");
const { websocketUrl } = require("./address");

const CLIENT_NAME = "photoshop-uxp";
const CLIENT_VERSION = "0.1.0";
const PROTOCOL = 1;
// Offered as Sec-WebSocket-Protocol: UXP's WebSocket(url, protocols) wants the list, and the
// server echoes it.
const SUBPROTOCOL = "seamwise.v1";

/**
 * Messages waiting for a consumer. A consumer asks for the first message matching a predicate;
 * messages nobody asked for yet stay queued in arrival order, so an `ack` that arrives before its
 * waiter is not lost.
 */
class Mailbox {
  constructor() {
    this.queue = [];
    this.waiters = [];
    this.failure = null;
  }

  push(message) {
    for (let i = 0; i < this.waiters.length; i++) {
      const w = this.waiters[i];
      if (w.predicate(message)) {
        this.waiters.splice(i, 1);
        clearTimeout(w.timer);
        w.resolve(message);
        return;
      }
    }
    this.queue.push(message);
  }

  /** Resolve with the first message matching `predicate`; reject on failure or after timeoutMs. */
  take(predicate, timeoutMs = 0) {
    const index = this.queue.findIndex(predicate);
    if (index >= 0) return Promise.resolve(this.queue.splice(index, 1)[0]);
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const waiter = { predicate, resolve, reject, timer: null };
      if (timeoutMs > 0) {
        waiter.timer = setTimeout(() => {
          this.waiters.splice(this.waiters.indexOf(waiter), 1);
          reject(new ConnectionLost("The server did not answer in time."));
        }, timeoutMs);
      }
      this.waiters.push(waiter);
    });
  }

  /** Drop queued messages that match (e.g. stale acks of a cancelled stream). */
  discard(predicate) {
    this.queue = this.queue.filter((m) => !predicate(m));
  }

  fail(error) {
    this.failure = error;
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      w.reject(error);
    }
  }
}

class Connection {
  /**
   * @param {object} options
   * @param {string} options.serverUrl  http://host:port of the server
   * @param {?string} options.token     bearer token for LAN servers
   * @param {Function} options.WebSocket WebSocket constructor
   * @param {(msg: object) => void} [options.onEvent] progress and preview frames
   */
  constructor({ serverUrl, token = null, WebSocket, onEvent = () => {} }) {
    if (typeof WebSocket !== "function") throw new TypeError("A WebSocket constructor is required.");
    this.serverUrl = serverUrl;
    this.token = token;
    this.WebSocketImpl = WebSocket;
    this.onEvent = onEvent;
    this.mailbox = new Mailbox();
    this.socket = null;
    this.welcome = null;
    this.closed = false;
  }

  /** Open the socket, say hello and resolve with the server's `welcome`. */
  async open(timeoutMs = 10000) {
    const socket = new this.WebSocketImpl(websocketUrl(this.serverUrl), [SUBPROTOCOL]);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    socket.onmessage = (event) => this._receive(event.data);
    socket.onclose = (event) => this._closed(event && event.code, event && event.reason);
    socket.onerror = () => this._closed(0, "socket error");
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new ConnectionLost(`No answer from ${this.serverUrl}.`));
        this.close();
      }, timeoutMs);
      socket.onopen = () => {
        clearTimeout(timer);
        resolve();
      };
      this.mailbox.take(() => false).catch((err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    this.send({ type: "hello", protocol: PROTOCOL, client: CLIENT_NAME, version: CLIENT_VERSION, capabilities: ["preview"], token: this.token || null });
    const answer = await this.mailbox.take(
      (m) => m.type === "welcome" || (m.type === "error" && m.job == null),
      timeoutMs,
    );
    if (answer.type === "error") {
      this.close();
      throw new ServerError(answer.code, answer.message, answer);
    }
    this.welcome = answer;
    return answer;
  }

  get limits() {
    return (this.welcome && this.welcome.limits) || {};
  }

  /** Bytes queued in the socket but not yet handed to the network (backpressure signal). */
  get bufferedAmount() {
    return this.socket ? this.socket.bufferedAmount || 0 : 0;
  }

  send(message) {
    if (this.closed || !this.socket) throw new ConnectionLost();
    this.socket.send(encodeFrame(message));
  }

  /** Next message that matches; rejects with ConnectionLost when the socket closes. */
  take(predicate, timeoutMs = 0) {
    return this.mailbox.take(predicate, timeoutMs);
  }

  discard(predicate) {
    this.mailbox.discard(predicate);
  }

  close() {
    if (this.socket && !this.closed) {
      try {
        this.socket.close(1000, "bye");
      } catch (_) {
        // closing a socket that never opened throws in some implementations; it is gone either way
      }
    }
    this._closed(1000, "closed by client");
  }

  _receive(data) {
    if (typeof data === "string") return; // the protocol is binary-only; ignore stray text
    let message;
    try {
      message = decodeFrame(data);
    } catch (err) {
      this._closed(0, err.message);
      return;
    }
    if (message.type === "progress" || message.type === "preview") {
      this.onEvent(message);
      return;
    }
    if (message.type === "pong") return;
    this.mailbox.push(message);
  }

  _closed(code, reason) {
    if (this.closed) return;
    this.closed = true;
    // 4401: the server wants a paired token (LAN boxes, and any request with an Origin, loopback
    // included). Waiting will not help: it is the pairing step, not a lost connection.
    const error = code === 4401
      ? new ServerError("unauthorized", "The server asks this panel to pair: enter the code it shows.")
      : new ConnectionLost(`Connection closed${reason ? `: ${reason}` : ""}.`);
    error.closeCode = code;
    this.mailbox.fail(error);
  }
}

module.exports = { Connection, Mailbox, CLIENT_NAME, CLIENT_VERSION, PROTOCOL, SUBPROTOCOL };
