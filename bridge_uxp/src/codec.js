"use strict";
/**
 * Frame codec for the Seamwise WebSocket protocol: one msgpack map per binary message.
 *
 * Kept apart from the connection so that framing rules (binary only, byte fields as msgpack `bin`)
 * live in one place and can be tested without a socket.
 */
const msgpack = require("./msgpack");

/** Encode one protocol message to the bytes of one binary WebSocket frame. */
function encodeFrame(message) {
  if (!message || typeof message.type !== "string") {
    throw new TypeError("A protocol message needs a string `type`.");
  }
  return msgpack.encode(message);
}

/**
 * Decode one binary frame. Byte fields come back as Uint8Array views into `data`, so a caller that
 * keeps them past the next frame must not rely on `data` being reused (it is not: every frame is a
 * fresh ArrayBuffer).
 */
function decodeFrame(data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  const message = msgpack.decode(bytes);
  if (!message || typeof message !== "object" || typeof message.type !== "string") {
    throw new Error("The server sent a frame that is not a protocol message.");
  }
  return message;
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Base64 of bytes, for `data:` URLs of preview JPEGs (UXP has no reliable btoa for binary). */
function toBase64(bytes) {
  let out = "";
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i < bytes.length) {
    const rest = bytes.length - i;
    const n = (bytes[i] << 16) | (rest > 1 ? bytes[i + 1] << 8 : 0);
    out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] + (rest > 1 ? B64[(n >> 6) & 63] : "=") + "=";
  }
  return out;
}

module.exports = { encodeFrame, decodeFrame, toBase64 };
