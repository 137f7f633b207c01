"use strict";
/**
 * Chunked upload and download of one byte stream over a Connection, with backpressure.
 *
 * Two brakes keep memory bounded: the protocol window (at most `window` chunks sent but not
 * acknowledged) and the socket's own `bufferedAmount` (never more than about one chunk queued in
 * the socket). A 150 MP 16-bit frame therefore never sits in memory whole: `read` produces each
 * chunk just before it is sent and `write` stores each received chunk before it is acknowledged.
 */
const { ServerError, Cancelled } = require("./errors");

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Messages that end a job's transfer whatever we were waiting for. */
function isTerminalFor(job) {
  return (m) =>
    (m.job === job && (m.type === "job.failed" || m.type === "job.cancelled" || m.type === "local.cancel")) ||
    (m.type === "error" && (m.job === job || m.fatal));
}

function terminalError(m) {
  if (m.type === "job.cancelled" || m.type === "local.cancel") return new Cancelled();
  return new ServerError(m.code || "render_failed", m.message, m);
}

/** Byte range of chunk `index` of a stream of `bytes` split into `chunkBytes` pieces. */
function chunkRange(index, bytes, chunkBytes) {
  const offset = index * chunkBytes;
  return { offset, length: Math.min(chunkBytes, bytes - offset) };
}

/**
 * Send the chunks `indices` of one stream and wait until each is acknowledged (= on the server's
 * disk). `read(offset, length)` resolves with exactly `length` bytes.
 */
async function uploadStream(conn, { job, stream, bytes, chunkBytes, indices, window, read, onChunk = () => {} }) {
  const terminal = isTerminalFor(job);
  const inflight = new Set();
  const awaitAck = async () => {
    const m = await conn.take((x) => (x.type === "ack" && x.job === job && x.stream === stream) || terminal(x));
    if (terminal(m)) throw terminalError(m);
    if (inflight.delete(m.index)) onChunk(m.index);
  };
  const limit = Math.max(1, window | 0);
  for (const index of indices) {
    while (inflight.size >= limit) await awaitAck();
    while (conn.bufferedAmount > chunkBytes) await sleep(2);
    const { offset, length } = chunkRange(index, bytes, chunkBytes);
    const data = await read(offset, length);
    if (data.length !== length) {
      throw new Error(`Read ${data.length} bytes for chunk ${index} of ${stream}, expected ${length}.`);
    }
    conn.send({ type: "chunk", job, stream, index, data });
    inflight.add(index);
  }
  while (inflight.size > 0) await awaitAck();
}

/**
 * Fetch chunks `from`..end of a result stream in order; `write(data, index)` must have stored the
 * chunk when it resolves, because only then is it acknowledged.
 */
async function downloadStream(conn, { job, stream, bytes, chunkBytes, chunks, from = 0, write }) {
  const terminal = isTerminalFor(job);
  const mine = (x) => x.job === job && x.stream === stream && (x.type === "chunk" || x.type === "fetch.end");
  conn.send({ type: "fetch", job, stream, from });
  let expected = from;
  for (;;) {
    const m = await conn.take((x) => mine(x) || terminal(x));
    if (terminal(m)) throw terminalError(m);
    if (m.type === "fetch.end") {
      if (expected !== chunks) {
        throw new ServerError("bad_chunk", `The server ended the ${stream} stream at chunk ${expected} of ${chunks}.`);
      }
      return;
    }
    if (m.index < expected) continue; // a chunk already stored (a stale frame of a replaced fetch)
    const { length } = chunkRange(m.index, bytes, chunkBytes);
    if (m.index !== expected || !(m.data instanceof Uint8Array) || m.data.length !== length) {
      throw new ServerError("bad_chunk", `Chunk ${m.index} of ${stream} is out of order or has the wrong length.`);
    }
    await write(m.data, m.index);
    conn.send({ type: "ack", job, stream, index: m.index });
    expected += 1;
  }
}

module.exports = { uploadStream, downloadStream, chunkRange, isTerminalFor, terminalError, sleep };
