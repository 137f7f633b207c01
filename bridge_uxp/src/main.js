"use strict";
/**
 * Panel entry point inside Photoshop: hands the host's modules to the panel. Everything below
 * this file receives them as arguments, which is what lets the tests run the same code on fakes.
 */
const photoshop = require("photoshop");
const uxp = require("uxp");
const fs = require("fs");
const { Panel } = require("./panel");

/** This computer's platform, for the "how to start the server" help; UXP's `os` module. */
function platform() {
  try {
    return require("os").platform();
  } catch (_) {
    return null;
  }
}

const panel = new Panel({
  document: window.document,
  ps: photoshop,
  fs,
  uxp,
  WebSocket: window.WebSocket,
  fetch: window.fetch.bind(window),
  storage: window.localStorage,
  hostName: (uxp.host && uxp.host.name) || "Photoshop",
  platform: platform(),
});
panel.start();
