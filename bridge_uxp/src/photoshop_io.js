"use strict";
/**
 * Photoshop side of a job: inspect the document, read the layer and the soft selection in
 * horizontal bands, and write the result as a new masked layer plus a hidden seam-risk layer.
 *
 * Everything takes the `photoshop` module as an argument (`ps`), so the same code runs against
 * Photoshop and against the in-memory fake in the tests. Memory rule: no function here holds more
 * than one band (about BAND_BYTES) of pixels at a time, and every ImageData is disposed as soon as
 * its pixels are copied out, because UXP stops a plugin near 600 MB.
 */
const { PhotoshopError } = require("./errors");

const BAND_BYTES = 16 * 1024 * 1024;
const DEPTHS = { bitDepth8: 8, bitDepth16: 16, bitDepth32: 32 };
const MODE_NAMES = {
  CMYKColorMode: "CMYK",
  grayscaleMode: "Greyscale",
  labColorMode: "Lab",
  bitmapMode: "Bitmap",
  indexedColorMode: "Indexed Color",
  multichannelMode: "Multichannel",
  duotoneMode: "Duotone",
};

function intersect(a, b) {
  const r = {
    left: Math.max(a.left, b.left),
    top: Math.max(a.top, b.top),
    right: Math.min(a.right, b.right),
    bottom: Math.min(a.bottom, b.bottom),
  };
  return r.right > r.left && r.bottom > r.top ? r : null;
}

function sizeOf(r) {
  return { width: r.right - r.left, height: r.bottom - r.top };
}

function plainBounds(b) {
  return { left: Math.round(b.left), top: Math.round(b.top), right: Math.round(b.right), bottom: Math.round(b.bottom) };
}

/** Selection bounds in pixels, or null (Document.selection, Photoshop 25.0). */
function selectionBounds(doc) {
  const bounds = doc.selection && doc.selection.bounds;
  return bounds ? plainBounds(bounds) : null;
}

/**
 * The document's profile name, or null for an untagged document: Photoshop reports "None" for
 * those (Document.colorProfileName), which is no profile any imaging call knows.
 */
function profileName(doc) {
  const name = doc.colorProfileName;
  return name && name !== "None" ? name : null;
}

const READ_BUSY_MS = 30000;

/**
 * Run `fn` in a modal scope of its own: Photoshop reads pixels only inside executeAsModal. Each
 * band gets a short scope, so Photoshop stays usable between bands. A scope another plugin or a
 * dialog holds is waited out for up to READ_BUSY_MS.
 */
async function inModal(ps, commandName, fn) {
  const until = Date.now() + READ_BUSY_MS;
  for (;;) {
    try {
      return await ps.core.executeAsModal(fn, { commandName });
    } catch (err) {
      if (!isModalConflict(err) || Date.now() > until) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

/**
 * Decide what a job will read: the active pixel layer, within the selection's bounds plus a
 * context margin (or the whole layer without a selection). Refuses what the pipeline cannot keep
 * exact: non-RGB documents, non-pixel layers, several selected layers.
 */
async function planJob(ps, { margin = 64, scale = 1 } = {}) {
  if (!ps.imaging || typeof ps.imaging.getPixels !== "function") {
    throw new PhotoshopError("no_imaging", "This Photoshop has no imaging API. Seamwise needs Photoshop 25.0 or newer: update Photoshop from Creative Cloud.");
  }
  const doc = ps.app.activeDocument;
  if (!doc) throw new PhotoshopError("no_document", "Open an RGB document first.");
  if (doc.mode !== "RGBColorMode") {
    const name = MODE_NAMES[doc.mode] || String(doc.mode);
    throw new PhotoshopError(
      "unsupported_mode",
      `This document is in ${name} mode. Convert it to RGB (Image > Mode > RGB Color) and try again.`,
    );
  }
  const depth = DEPTHS[doc.bitsPerChannel];
  if (!depth) throw new PhotoshopError("unsupported_depth", `Unsupported bit depth ${doc.bitsPerChannel}.`);
  const layers = doc.activeLayers;
  if (!layers || layers.length !== 1) {
    throw new PhotoshopError("layer", "Select exactly one pixel layer.");
  }
  const layer = layers[0];
  if (layer.kind !== "pixel") {
    throw new PhotoshopError("layer", `"${layer.name}" is not a pixel layer. Select a pixel layer (not a group, text, smart object or adjustment).`);
  }
  const canvas = { left: 0, top: 0, right: Math.round(doc.width), bottom: Math.round(doc.height) };
  const layerBounds = intersect(plainBounds(layer.boundsNoEffects), canvas);
  if (!layerBounds) throw new PhotoshopError("empty_layer", `"${layer.name}" has no pixels.`);
  const selection = selectionBounds(doc);
  let region = layerBounds;
  if (selection) {
    // Upscaling makes a new document of the selected area; refining needs context around it.
    const m = scale > 1 ? 0 : margin;
    const grown = { left: selection.left - m, top: selection.top - m, right: selection.right + m, bottom: selection.bottom + m };
    region = intersect(grown, layerBounds);
    if (!region) throw new PhotoshopError("empty_selection", "The selection does not touch the layer's pixels.");
  }
  return {
    documentID: doc.id,
    documentTitle: doc.title,
    layerID: layer.id,
    layerName: layer.name,
    // a background layer reads as RGB, any other layer as RGBA (it can hold transparency)
    channels: layer.isBackgroundLayer ? 3 : 4,
    depth,
    profile: profileName(doc),
    resolution: doc.resolution || 72,
    region,
    selection: selection && scale === 1 ? intersect(selection, region) : null,
    scale,
  };
}

function findDocument(ps, documentID) {
  const docs = ps.app.documents;
  for (let i = 0; i < docs.length; i++) if (docs[i].id === documentID) return docs[i];
  return null;
}

function bytesOf(typed) {
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

/**
 * Copy `data` (rows of `got` bounds) into a zeroed band of `want` bounds. Photoshop trims
 * `sourceBounds` to where the layer or selection has pixels; what it left out is transparent
 * (or unselected), i.e. zero.
 */
function placeInBand(data, got, want, pixelBytes) {
  if (got.left === want.left && got.top === want.top && got.right === want.right && got.bottom === want.bottom) {
    return data;
  }
  const { width, height } = sizeOf(want);
  const band = new Uint8Array(width * height * pixelBytes);
  const inner = intersect(got, want);
  if (!inner) return band;
  const gotWidth = got.right - got.left;
  const span = (inner.right - inner.left) * pixelBytes;
  for (let y = inner.top; y < inner.bottom; y++) {
    const src = ((y - got.top) * gotWidth + (inner.left - got.left)) * pixelBytes;
    const dst = ((y - want.top) * width + (inner.left - want.left)) * pixelBytes;
    band.set(data.subarray(src, src + span), dst);
  }
  return band;
}

/**
 * Random-access bytes of an image read band by band. Only the current band is kept; protocol
 * chunks (any byte range) are cut from it.
 */
class BandSource {
  constructor({ rowBytes, height, readRows, bandBytes = BAND_BYTES }) {
    this.rowBytes = rowBytes;
    this.height = height;
    this.bandRows = Math.max(1, Math.floor(bandBytes / rowBytes));
    this.readRows = readRows;
    this.band = null;
    this.bandTop = -1;
  }

  get bytes() {
    return this.rowBytes * this.height;
  }

  async read(offset, length) {
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const pos = offset + done;
      const row = Math.floor(pos / this.rowBytes);
      const top = Math.floor(row / this.bandRows) * this.bandRows;
      if (top !== this.bandTop) {
        this.band = null; // let the old band go before reading the next one
        const rows = Math.min(this.bandRows, this.height - top);
        this.band = await this.readRows(top, rows);
        this.bandTop = top;
      }
      const start = pos - top * this.rowBytes;
      const take = Math.min(length - done, this.band.length - start);
      out.set(this.band.subarray(start, start + take), done);
      done += take;
    }
    return out;
  }

  release() {
    this.band = null;
    this.bandTop = -1;
  }
}

function findLayer(doc, layerID) {
  const layers = doc.layers ? Array.from(doc.layers) : [];
  for (const layer of layers) {
    if (layer.id === layerID) return layer;
    const inner = layer.layers && findLayer(layer, layerID);
    if (inner) return inner;
  }
  return null;
}

/** The job's document and layer, or a PhotoshopError saying which is gone. */
function requireSource(ps, plan) {
  const doc = findDocument(ps, plan.documentID);
  if (!doc) throw new PhotoshopError("document_closed", `The document "${plan.documentTitle}" was closed.`);
  if (!findLayer(doc, plan.layerID)) throw new PhotoshopError("layer_deleted", `The layer "${plan.layerName}" was deleted.`);
  return doc;
}

/**
 * Open the layer pixels of `plan.region` as a BandSource at document depth (16-bit as full range
 * 0..65535, the protocol's range). Each band is read in its own modal scope, by document and
 * layer id, whichever document is active meanwhile. Photoshop trims a read to where the layer has
 * pixels; a band with none at all (fully transparent rows) comes back as transparent zeros.
 */
async function openLayerSource(ps, plan, { bandBytes = BAND_BYTES } = {}) {
  const doc = requireSource(ps, plan);
  // a job recorded by an earlier panel version has no `channels`: the layer says
  const channels = plan.channels || (findLayer(doc, plan.layerID).isBackgroundLayer ? 3 : 4);
  const { width, height } = sizeOf(plan.region);
  const bytesPerSample = plan.depth / 8;
  const pixelBytes = channels * bytesPerSample;
  const info = { colorProfile: plan.profile };
  const readBand = async (want) => {
    let answer;
    try {
      answer = await ps.imaging.getPixels({ documentID: plan.documentID, layerID: plan.layerID, sourceBounds: want, componentSize: plan.depth, applyAlpha: false });
    } catch (err) {
      requireSource(ps, plan);
      if (channels === 4 && !isModalConflict(err)) return null; // nothing but transparency here
      throw err;
    }
    const { imageData, sourceBounds } = answer;
    try {
      if (imageData.components !== channels) {
        throw new PhotoshopError("layer_changed", "The layer changed while it was being read.");
      }
      info.colorProfile = imageData.colorProfile || info.colorProfile;
      const data = await imageData.getData({ chunky: true, fullRange: plan.depth === 16 });
      return placeInBand(bytesOf(data), plainBounds(sourceBounds), want, pixelBytes);
    } finally {
      imageData.dispose();
    }
  };
  const readRows = async (top, rows) => {
    const want = { left: plan.region.left, top: plan.region.top + top, right: plan.region.right, bottom: plan.region.top + top + rows };
    const band = await inModal(ps, "Seamwise: reading the layer", () => readBand(want));
    return band || new Uint8Array(width * rows * pixelBytes);
  };
  const source = new BandSource({ rowBytes: width * pixelBytes, height, readRows, bandBytes });
  await source.read(0, 1); // the profile the pixels are in comes with the first band
  return { source, channels, colorProfile: info.colorProfile, width, height };
}

/** The soft selection over `plan.region` as 8-bit bytes (0 = untouched, 255 = fully processed). */
function openSelectionSource(ps, plan, { bandBytes = BAND_BYTES } = {}) {
  const { width, height } = sizeOf(plan.region);
  const readBand = async (want) => {
    const { imageData, sourceBounds } = await ps.imaging.getSelection({ documentID: plan.documentID, sourceBounds: want });
    try {
      if (imageData.components !== 1 || imageData.componentSize !== 8) {
        throw new PhotoshopError("selection", "Photoshop returned an unexpected selection format.");
      }
      const data = await imageData.getData({ chunky: true });
      return placeInBand(bytesOf(data), plainBounds(sourceBounds), want, 1);
    } finally {
      imageData.dispose();
    }
  };
  const readRows = async (top, rows) => {
    requireSource(ps, plan);
    const want = { left: plan.region.left, top: plan.region.top + top, right: plan.region.right, bottom: plan.region.top + top + rows };
    return inModal(ps, "Seamwise: reading the selection", () => readBand(want));
  };
  return new BandSource({ rowBytes: width, height, readRows, bandBytes });
}

/** View bytes as the typed array of a depth (copying only when the offset is misaligned). */
function typedOf(bytes, depth) {
  if (depth === 8) return bytes;
  const aligned = bytes.byteOffset % (depth / 8) === 0 ? bytes : bytes.slice();
  const Type = depth === 16 ? Uint16Array : Float32Array;
  return new Type(aligned.buffer, aligned.byteOffset, aligned.byteLength / (depth / 8));
}

/** Grey seam-risk bytes (8-bit) as RGB samples at the document's depth, for a visible layer. */
function seamsToRgb(grey, depth) {
  const n = grey.length;
  const out = new (depth === 8 ? Uint8Array : depth === 16 ? Uint16Array : Float32Array)(n * 3);
  const scale = depth === 8 ? 1 : depth === 16 ? 257 : 1 / 255;
  for (let i = 0, j = 0; i < n; i++, j += 3) {
    const v = grey[i] * scale;
    out[j] = v;
    out[j + 1] = v;
    out[j + 2] = v;
  }
  return out;
}

function isModalConflict(err) {
  const text = String((err && err.message) || err);
  return (err && err.number === 9) || /modal/i.test(text);
}

/** Profile name as createImageDataFromBuffer wants it (32-bit names carry a linear suffix). */
function bufferProfile(name) {
  return String(name || "").replace(/\s*\(Linear RGB Profile\)\s*$/i, "");
}

/**
 * Write bands of `height` rows read by `readBand(top, rows)` (typed samples) into `layerID` of
 * `documentID` at `origin`, disposing each ImageData right after it is written. A mask's first
 * band replaces (and so creates) the layer's user mask; the others are placed into it.
 */
async function putBands(ps, { documentID, layerID, origin, width, height, components, depth, profile, readBand, mask = false }) {
  const rowBytes = width * components * (depth / 8);
  const bandRows = Math.max(1, Math.floor(BAND_BYTES / rowBytes));
  for (let top = 0; top < height; top += bandRows) {
    const rows = Math.min(bandRows, height - top);
    const samples = await readBand(top, rows);
    // colorProfile "" means the target document's own: untagged documents get no conversion
    const options = mask
      ? { width, height: rows, components: 1, chunky: true, colorSpace: "Grayscale", colorProfile: "Gray Gamma 2.2" }
      : { width, height: rows, components, chunky: true, colorSpace: "RGB", colorProfile: profile, fullRange: depth === 16 };
    const imageData = await ps.imaging.createImageDataFromBuffer(samples, options);
    try {
      const target = { left: origin.left, top: origin.top + top };
      if (mask) {
        await ps.imaging.putLayerMask({ documentID, layerID, kind: "user", imageData, replace: top === 0, targetBounds: target });
      } else {
        await ps.imaging.putPixels({ documentID, layerID, imageData, replace: false, targetBounds: target });
      }
    } finally {
      imageData.dispose();
    }
  }
}

/** A user's cancel of the modal scope (Esc, or the progress bar's cancel). */
class ModalCancelled extends Error {}

/**
 * Put a finished job into Photoshop as one undoable step: a new layer named after the job holding
 * the result (masked to the selection), and a hidden seam-risk layer. Upscaled results go into a
 * new document of the result's size. Called only once every result byte is spooled locally, so a
 * failure here never leaves a half-written layer: history is rolled back, and a new document is
 * registered to close by itself if the scope ends in an error or the user cancels it.
 * Every call names the job's document and layer by id: the user may have switched documents.
 *
 * @param {object} result  {width, height, channels, depth, colorProfile, read(offset, length)}
 * @param {object} seams   {width, height, read(offset, length)} 8-bit grey
 * @param {?object} mask   BandSource of the selection over plan.region, or null
 */
async function writeResult(ps, plan, { name, result, seams, mask }) {
  const depth = plan.depth;
  // "None" or "": untagged ("None" only in a job recorded by an earlier panel version)
  const tagged = Boolean(plan.profile) && plan.profile !== "None";
  const profile = tagged ? bufferProfile(result.colorProfile || plan.profile) : "";
  const rowBytes = result.width * result.channels * (depth / 8);
  const readResult = async (top, rows) => typedOf(await result.read(top * rowBytes, rows * rowBytes), depth);
  const readSeams = async (top, rows) => seamsToRgb(await seams.read(top * seams.width, rows * seams.width), depth);
  const readMask = async (top, rows) => {
    const soft = await mask.read(top * result.width, rows * result.width);
    // The server already blended the soft edge into the pixels; the mask only bounds the layer.
    for (let i = 0; i < soft.length; i++) soft[i] = soft[i] > 0 ? 255 : 0;
    return soft;
  };

  const run = async (executionContext) => {
    const host = executionContext.hostControl;
    const checkCancelled = () => {
      if (executionContext.isCancelled) throw new ModalCancelled("cancelled");
    };
    let doc = findDocument(ps, plan.documentID);
    if (!doc) throw new PhotoshopError("document_closed", `The document "${plan.documentTitle}" was closed; the result was not applied.`);
    let origin = { left: plan.region.left, top: plan.region.top };
    let createdDocument = null;
    if (plan.scale > 1) {
      const options = { name, width: result.width, height: result.height, resolution: plan.resolution * plan.scale, mode: "RGBColorMode", fill: "transparent", depth };
      if (tagged) options.profile = bufferProfile(plan.profile);
      createdDocument = await ps.app.createDocument(options);
      // closed without saving when the scope ends, unless it is complete (cancel included)
      await host.registerAutoCloseDocument(createdDocument.id);
      if (!tagged) createdDocument.colorProfileType = ps.constants.ColorProfileType.NONE;
      doc = createdDocument;
      origin = { left: 0, top: 0 };
    }
    const suspension = await host.suspendHistory({ documentID: doc.id, name });
    try {
      checkCancelled();
      const layer = await doc.createLayer({ name });
      const common = { documentID: doc.id, origin, width: result.width, height: result.height, depth };
      await putBands(ps, { ...common, layerID: layer.id, components: result.channels, profile, readBand: readResult });
      checkCancelled();
      if (mask) await putBands(ps, { ...common, layerID: layer.id, components: 1, depth: 8, readBand: readMask, mask: true });
      checkCancelled();
      const seamLayer = await doc.createLayer({ name: `${name} seam risk` });
      await putBands(ps, { ...common, layerID: seamLayer.id, components: 3, profile, readBand: readSeams });
      seamLayer.visible = false;
      // Leave the result selected, not the hidden seam layer (the next Enhance reads the active
      // layer), but only in the document in front: a select never goes to another document.
      const front = ps.app.activeDocument;
      if (front && front.id === doc.id) {
        await ps.action.batchPlay([{ _obj: "select", _target: [{ _ref: "layer", _id: layer.id }, { _ref: "document", _id: doc.id }], makeVisible: false }], {});
      }
      checkCancelled();
      await host.resumeHistory(suspension, true);
      if (createdDocument) await host.unregisterAutoCloseDocument(createdDocument.id);
      return { documentID: doc.id, layerID: layer.id, seamLayerID: seamLayer.id };
    } catch (err) {
      if (executionContext.isCancelled) throw new ModalCancelled("cancelled");
      await host.resumeHistory(suspension, false);
      throw err;
    }
  };

  try {
    return await ps.core.executeAsModal(run, { commandName: name });
  } catch (err) {
    if (err instanceof PhotoshopError) throw err;
    if (err instanceof ModalCancelled) {
      throw new PhotoshopError("apply_cancelled", "Placing the result was cancelled. The result is kept: press Apply to place it.");
    }
    if (isModalConflict(err)) {
      throw new PhotoshopError(
        "modal_busy",
        "Photoshop is busy with a dialog or another plugin. Close it, then press Apply to place the result.",
      );
    }
    throw new PhotoshopError("apply_failed", `Photoshop could not place the result: ${err.message || err}`);
  }
}

module.exports = {
  planJob,
  openLayerSource,
  openSelectionSource,
  writeResult,
  findDocument,
  profileName,
  BandSource,
  placeInBand,
  seamsToRgb,
  bufferProfile,
  BAND_BYTES,
};
