"use strict";
/**
 * Stand-ins for the UXP runtime pieces the panel uses: `require("uxp").storage.secureStorage`
 * and `window.localStorage`. UXP's `fs` is in uxp_fs.js (real files, Node) and memory_fs.js
 * (browser tests).
 */

/**
 * `items`: where the bytes live (a Map by default). UXP keeps secureStorage across panel reloads
 * and Photoshop restarts, so the browser harness passes a Map-like over the page's localStorage.
 */
function createSecureStorage(items = new Map()) {
  return {
    async setItem(key, value) {
      items.set(key, typeof value === "string" ? new TextEncoder().encode(value) : new Uint8Array(value));
    },
    async getItem(key) {
      // UXP returns the stored bytes as a Uint8Array; for a key it does not hold, it may reject
      if (!items.has(key)) throw new Error(`secureStorage: no item for ${key}`);
      return items.get(key).slice();
    },
    async removeItem(key) {
      items.delete(key);
    },
  };
}

function createLocalStorage() {
  const items = new Map();
  return {
    getItem: (k) => (items.has(k) ? items.get(k) : null),
    setItem: (k, v) => items.set(k, String(v)),
    removeItem: (k) => items.delete(k),
    clear: () => items.clear(),
    get length() {
      return items.size;
    },
  };
}


/**
 * UXP's WebSocket on top of the `ws` package: UXP documents the constructor as
 * WebSocket(url, protocols) and throws on invalid protocols, so a missing list is refused here.
 */
function uxpWebSocketClass(Base = require("ws")) {
  return class UxpWebSocket extends Base {
    constructor(url, protocols) {
      if (!(typeof protocols === "string" || (Array.isArray(protocols) && protocols.length > 0))) {
        throw new Error("WebSocket: invalid protocols");
      }
      super(url, protocols);
    }
  };
}

function createUxp({ secureItems } = {}) {
  return { storage: { secureStorage: createSecureStorage(secureItems) }, host: { name: "Photoshop" } };
}

module.exports = { createUxp, createLocalStorage, createSecureStorage, uxpWebSocketClass };
