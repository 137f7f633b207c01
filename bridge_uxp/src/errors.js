"use strict";
/** Errors the panel distinguishes: each one maps to a different message or recovery. */

/** The server answered with a protocol `error` frame or a `job.failed` event. */
class ServerError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = "ServerError";
    this.code = code;
    this.fatal = Boolean(extra.fatal);
    this.job = extra.job ?? null;
  }
}

/** The socket dropped or could not be opened; the job may be resumed by reconnecting. */
class ConnectionLost extends Error {
  constructor(message = "The connection to the server was lost.") {
    super(message);
    this.name = "ConnectionLost";
  }
}

/** The user (or the server, with `job.cancelled`) stopped the job. */
class Cancelled extends Error {
  constructor(message = "Cancelled.") {
    super(message);
    this.name = "Cancelled";
  }
}

/** Something in Photoshop stops the job: unsupported document, modal conflict, closed document. */
class PhotoshopError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "PhotoshopError";
    this.code = code;
  }
}

module.exports = { ServerError, ConnectionLost, Cancelled, PhotoshopError };
