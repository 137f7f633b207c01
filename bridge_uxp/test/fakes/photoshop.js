"use strict";
/**
 * In-memory stand-in for Photoshop's UXP `photoshop` module, for tests of the shipped panel code.
 *
 * It follows Adobe's documented semantics of the parts the panel uses, and refuses (throws)
 * where Photoshop would refuse or where a behaviour is not modelled, rather than guessing:
 * - imaging.getPixels/getSelection read only inside an executeAsModal scope. getPixels trims
 *   `sourceBounds` to the pixels the layer has (alpha > 0), not to the layer's box, returns the
 *   trimmed bounds, and refuses an area without any; Layer.boundsNoEffects are those pixels'
 *   bounds. 16-bit data is stored in Photoshop's 0..32768 range and converted to 0..65535 only
 *   with getData({fullRange:true}) / createImageDataFromBuffer({fullRange:true}); 32-bit data is
 *   float. Colour conversion and depth conversion are not modelled: asking for a different
 *   profile or component size than the document's throws. An empty colorProfile means the target
 *   document's. An untagged document (colorProfileType NONE) reports colorProfileName "None",
 *   which no imaging call accepts as a profile name.
 * - Every ImageData counts against a 600 MB plugin memory budget until dispose(); getData after
 *   dispose throws. Peak usage is recorded for the tests.
 * - Changes (putPixels, putLayerMask, createLayer, layer properties, new documents) need a modal
 *   scope from core.executeAsModal; only one modal scope at a time, and a conflict throws error
 *   number 9 as Photoshop does before 25.10.
 * - The user can cancel a modal scope (`cancelModalAfter`): isCancelled turns true and every later
 *   Photoshop call in that scope throws. Documents registered with registerAutoCloseDocument
 *   close when the scope ends, unless unregistered.
 * - putPixels with replace:true clears the layer first; replace:false only touches the target.
 * - putLayerMask with replace:true discards the layer's user mask and creates a new one (hidden
 *   outside the data); replace:false places the data into the existing mask, which must exist.
 * - batchPlay descriptors without a document reference act on the active document, as
 *   Photoshop's do: `select` of a layer by id in another document than the active one fails.
 * - hostControl.suspendHistory/resumeHistory merge changes into one history state; resuming with
 *   commit=false, or a modal function that throws while suspended, rolls them back.
 * Test-only helpers live on the FakePhotoshop object, never on the module the panel sees.
 */

const MEMORY_LIMIT = 600 * 1024 * 1024;
const DEPTH_NAMES = { 8: "bitDepth8", 16: "bitDepth16", 32: "bitDepth32" };
const TYPES = { 8: Uint8Array, 16: Uint16Array, 32: Float32Array };

const toFull = (v) => Math.round((v * 65535) / 32768);
const toNative = (v) => Math.round((v * 32768) / 65535);
// The same conversions as tables: the tests push hundreds of millions of samples through them.
const FULL = Uint16Array.from({ length: 32769 }, (_, v) => toFull(v));
const NATIVE = Uint16Array.from({ length: 65536 }, (_, v) => toNative(v));

function intersect(a, b) {
  const r = { left: Math.max(a.left, b.left), top: Math.max(a.top, b.top), right: Math.min(a.right, b.right), bottom: Math.min(a.bottom, b.bottom) };
  return r.right > r.left && r.bottom > r.top ? r : null;
}

function withSize(r) {
  return { ...r, width: r.right - r.left, height: r.bottom - r.top };
}

function depthOf(typed) {
  // by tag, not instanceof: the panel may run in another realm (a UXP-shaped context in the tests)
  const tag = Object.prototype.toString.call(typed);
  if (tag === "[object Uint8Array]") return 8;
  if (tag === "[object Uint16Array]") return 16;
  if (tag === "[object Float32Array]") return 32;
  throw new TypeError("createImageDataFromBuffer needs a Uint8Array, Uint16Array or Float32Array");
}

class FakePhotoshop {
  constructor({ memoryLimit = MEMORY_LIMIT, imaging = true } = {}) {
    this.hasImaging = imaging; // false: a Photoshop without the imaging API
    this.workingProfile = "sRGB IEC61966-2.1";
    this.cancelModalAfter = null; // n: the user cancels the next modal scope after n Photoshop calls
    this.modalContext = null;
    this.memory = { live: 0, peak: 0, limit: memoryLimit };
    this.documents = [];
    this.activeDocument = null;
    this.nextId = 1;
    this.modal = false;
    this.otherPluginModal = false;
    this.calls = { getPixels: 0, putPixels: 0, putLayerMask: 0, getSelection: 0 };
    this.module = this._module();
  }

  // ---- test helpers --------------------------------------------------------------------
  /** Add an open document with a background layer filled by `fill(x, y, c)` (native range). */
  /** `profile: null` makes an untagged document (Photoshop's "Don't Color Manage"). */
  addDocument({ width, height, depth = 8, mode = "RGBColorMode", profile = "sRGB IEC61966-2.1", title = "Untitled", fill = () => 0, resolution = 300 }) {
    const doc = new FakeDocument(this, { width, height, depth, mode, profile, title, resolution });
    const bg = new FakeLayer(this, doc, { name: "Background", background: true });
    const data = bg.allocate();
    let i = 0;
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) for (let c = 0; c < 3; c++) data[i++] = fill(x, y, c);
    bg.rect = { left: 0, top: 0, right: width, bottom: height };
    doc.layers.push(bg);
    doc.activeLayers = [bg];
    this.documents.push(doc);
    this.activeDocument = doc;
    return doc;
  }

  /** Set (or clear with null) the soft selection: a width×height Uint8Array, 0..255. */
  setSelection(doc, mask) {
    doc.selectionData = mask;
  }

  closeDocument(doc) {
    this.documents = this.documents.filter((d) => d !== doc);
    if (this.activeDocument === doc) this.activeDocument = this.documents[this.documents.length - 1] || null;
  }

  /** Undo the latest history state of `doc` (what the user's Cmd-Z does). */
  undo(doc) {
    const state = doc.historyStates.pop();
    if (!state) throw new Error("nothing to undo");
    state.snapshot.restore();
  }

  // ---- memory accounting ---------------------------------------------------------------
  _allocate(bytes) {
    if (this.memory.live + bytes > this.memory.limit) {
      throw new Error("Plugin exceeds memory limit");
    }
    this.memory.live += bytes;
    this.memory.peak = Math.max(this.memory.peak, this.memory.live);
  }

  _free(bytes) {
    this.memory.live -= bytes;
  }

  _requireModal(what) {
    if (!this.modal) throw new Error(`${what}: this call modifies the document and must run inside executeAsModal`);
    this._countCall();
  }

  /** Inside a modal scope: the user's cancel, once `cancelModalAfter` calls have passed. */
  _countCall() {
    const ctx = this.modalContext;
    if (!ctx) return;
    if (ctx.isCancelled) throw new Error("The user cancelled the operation");
    if (this.cancelModalAfter !== null && this.cancelModalAfter-- <= 0) {
      this.cancelModalAfter = null;
      ctx.isCancelled = true;
      if (typeof ctx.onCancel === "function") ctx.onCancel();
      throw new Error("The user cancelled the operation");
    }
  }

  _document(documentID) {
    const doc = this.documents.find((d) => d.id === documentID);
    if (!doc) throw new Error(`No document with id ${documentID}`);
    return doc;
  }

  // ---- the module the panel sees -------------------------------------------------------
  _module() {
    const fake = this;
    const imaging = {
      async getPixels(options) {
        fake.calls.getPixels++;
        if (!fake.modal) throw new Error("getPixels must be called inside executeAsModal");
        fake._countCall();
        const doc = fake._document(options.documentID);
        if (options.layerID === undefined) throw new Error("fake: composite reads are not modelled");
        const layer = doc.layerById(options.layerID);
        const componentSize = options.componentSize === undefined || options.componentSize === -1 ? doc.depth : options.componentSize;
        if (componentSize !== doc.depth) throw new Error("fake: depth conversion is not modelled");
        if (options.colorProfile && options.colorProfile !== doc.effectiveProfile) throw new Error("fake: colour conversion is not modelled");
        if (options.targetSize) throw new Error("fake: scaled reads are not modelled");
        if (!layer.data || !layer.rect) throw new Error("The layer has no pixels");
        const want = options.sourceBounds || layer.rect;
        const got = layer.pixelBounds(intersect(want, layer.rect));
        if (!got) throw new Error("The requested area has no pixels");
        const comps = layer.channels;
        const out = new TYPES[doc.depth]((got.right - got.left) * (got.bottom - got.top) * comps);
        let o = 0;
        for (let y = got.top; y < got.bottom; y++) {
          const start = (y * doc.width + got.left) * comps;
          out.set(layer.data.subarray(start, start + (got.right - got.left) * comps), o);
          o += (got.right - got.left) * comps;
        }
        const imageData = new FakeImageData(fake, {
          width: got.right - got.left, height: got.bottom - got.top, components: comps, componentSize: doc.depth,
          colorSpace: "RGB", colorProfile: doc.depth === 32 ? `${doc.effectiveProfile} (Linear RGB Profile)` : doc.effectiveProfile, native: out,
        });
        return { imageData, sourceBounds: withSize(got), level: 0 };
      },

      async getSelection(options) {
        fake.calls.getSelection++;
        if (!fake.modal) throw new Error("getSelection must be called inside executeAsModal");
        fake._countCall();
        const doc = fake._document(options.documentID);
        if (!doc.selectionData) throw new Error("There is no selection");
        const canvas = { left: 0, top: 0, right: doc.width, bottom: doc.height };
        const got = intersect(options.sourceBounds || canvas, canvas);
        if (!got) throw new Error("The requested area is outside the document");
        const w = got.right - got.left;
        const out = new Uint8Array(w * (got.bottom - got.top));
        for (let y = got.top; y < got.bottom; y++) {
          out.set(doc.selectionData.subarray(y * doc.width + got.left, y * doc.width + got.right), (y - got.top) * w);
        }
        const imageData = new FakeImageData(fake, { width: w, height: got.bottom - got.top, components: 1, componentSize: 8, colorSpace: "Grayscale", colorProfile: "", native: out });
        return { imageData, sourceBounds: withSize(got), level: 0 };
      },

      async createImageDataFromBuffer(typed, options) {
        const depth = depthOf(typed);
        const { width, height, components } = options;
        const chunky = options.chunky !== false;
        if (!(width > 0 && height > 0 && components > 0)) throw new Error("width, height and components are required");
        if (typed.length !== width * height * components) throw new Error(`buffer holds ${typed.length} samples, expected ${width * height * components}`);
        const colorSpace = options.colorSpace;
        if (colorSpace === "RGB" && !(components === 3 || components === 4)) throw new Error("RGB data needs 3 or 4 components");
        if (colorSpace === "Grayscale" && !(components === 1 || components === 2)) throw new Error("Grayscale data needs 1 or 2 components");
        if (colorSpace !== "RGB" && colorSpace !== "Grayscale") throw new Error(`fake: colorSpace ${colorSpace} is not modelled`);
        if (options.colorProfile && (/\(Linear RGB Profile\)/.test(options.colorProfile) || options.colorProfile === "None")) throw new Error(`Unknown color profile "${options.colorProfile}"`);
        let native = new TYPES[depth](typed.length);
        if (!chunky) throw new Error("fake: planar input is not modelled");
        if (depth === 16) {
          if (options.fullRange) for (let i = 0; i < typed.length; i++) native[i] = NATIVE[typed[i]];
          else for (let i = 0; i < typed.length; i++) native[i] = Math.min(typed[i], 32768);
        } else native.set(typed);
        return new FakeImageData(fake, { width, height, components, componentSize: depth, colorSpace, colorProfile: options.colorProfile || "", native });
      },

      async putPixels(options) {
        fake.calls.putPixels++;
        fake._requireModal("putPixels");
        const doc = fake._document(options.documentID);
        const layer = doc.layerById(options.layerID);
        const img = options.imageData;
        img._check();
        if (layer.kind !== "pixel") throw new Error("putPixels needs a pixel layer");
        if (img.colorSpace !== "RGB") throw new Error("fake: putPixels of non-RGB data is not modelled");
        if (img.componentSize !== doc.depth) throw new Error("fake: depth conversion is not modelled");
        const profile = img.colorProfile.replace(/\s*\(Linear RGB Profile\)$/, "") || doc.effectiveProfile; // "": the document's
        if (profile !== doc.effectiveProfile) throw new Error(`fake: colour conversion (${profile} → ${doc.effectiveProfile}) is not modelled`);
        if (img.components === 4 && layer.channels === 3) throw new Error("fake: alpha into a background layer is not modelled");
        const snap = doc._change(options.commandName || "Put Pixels");
        snap.touch(layer);
        if (options.replace !== false) {
          layer.data = null;
          layer.rect = null;
        }
        const data = layer.data || layer.allocate();
        const left = (options.targetBounds && options.targetBounds.left) || 0;
        const top = (options.targetBounds && options.targetBounds.top) || 0;
        const target = intersect({ left, top, right: left + img.width, bottom: top + img.height }, { left: 0, top: 0, right: doc.width, bottom: doc.height });
        if (!target) return;
        const lc = layer.channels;
        const ic = img.components;
        const src = img._native;
        const opaque = doc.depth === 8 ? 255 : doc.depth === 16 ? 32768 : 1;
        const span = target.right - target.left;
        for (let y = target.top; y < target.bottom; y++) {
          let s = ((y - top) * img.width + (target.left - left)) * ic;
          let d = (y * doc.width + target.left) * lc;
          if (ic === lc) {
            data.set(src.subarray(s, s + span * ic), d);
            continue;
          }
          for (let x = 0; x < span; x++, s += ic, d += lc) {
            data[d] = src[s];
            data[d + 1] = src[s + 1];
            data[d + 2] = src[s + 2];
            if (lc === 4) data[d + 3] = ic === 4 ? src[s + 3] : opaque;
          }
        }
        layer.rect = layer.rect
          ? { left: Math.min(layer.rect.left, target.left), top: Math.min(layer.rect.top, target.top), right: Math.max(layer.rect.right, target.right), bottom: Math.max(layer.rect.bottom, target.bottom) }
          : target;
      },

      async putLayerMask(options) {
        fake.calls.putLayerMask++;
        fake._requireModal("putLayerMask");
        const doc = fake._document(options.documentID);
        const layer = doc.layerById(options.layerID);
        const img = options.imageData;
        img._check();
        if ((options.kind || "user") !== "user") throw new Error("only user masks can be edited");
        const replace = options.replace !== false;
        if (!layer.userMask && !replace) throw new Error("The layer has no user mask");
        if (img.components !== 1 || img.componentSize !== 8) throw new Error("fake: masks are modelled as 8-bit, one component");
        const snap = doc._change(options.commandName || "Put Layer Mask");
        snap.touch(layer);
        if (replace) layer.userMask = new Uint8Array(doc.width * doc.height);
        const left = (options.targetBounds && options.targetBounds.left) || 0;
        const top = (options.targetBounds && options.targetBounds.top) || 0;
        const target = intersect({ left, top, right: left + img.width, bottom: top + img.height }, { left: 0, top: 0, right: doc.width, bottom: doc.height });
        if (!target) return;
        for (let y = target.top; y < target.bottom; y++) {
          const s = (y - top) * img.width + (target.left - left);
          layer.userMask.set(img._native.subarray(s, s + target.right - target.left), y * doc.width + target.left);
        }
      },
    };

    const core = {
      async executeAsModal(fn, options = {}) {
        if (fake.modal || fake.otherPluginModal) {
          const err = new Error("host is in a modal state");
          err.number = 9;
          throw err;
        }
        fake.modal = true;
        const context = new FakeExecutionContext(fake, options);
        fake.modalContext = context;
        try {
          return await fn(context, options.descriptor);
        } catch (err) {
          context._rollbackAll();
          throw err;
        } finally {
          context._closeRegistered();
          fake.modal = false;
          fake.modalContext = null;
        }
      },
    };

    const action = {
      async batchPlay(descriptors) {
        if (fake.modal) fake._countCall();
        return descriptors.map((d) => fake._batchPlayOne(d));
      },
    };

    const app = {
      get activeDocument() {
        return fake.activeDocument;
      },
      get documents() {
        return fake.documents.slice();
      },
      async createDocument(options) {
        fake._requireModal("createDocument");
        const depth = options.depth || 8;
        if (![8, 16, 32].includes(depth)) throw new Error("bad depth");
        if (options.profile === "None") throw new Error('Unknown color profile "None"');
        const doc = new FakeDocument(fake, { width: options.width, height: options.height, depth, mode: options.mode || "RGBColorMode", profile: options.profile || fake.workingProfile, title: options.name || "Untitled", resolution: options.resolution || 72 });
        if (options.fill !== "transparent") throw new Error("fake: only transparent new documents are modelled");
        const layer = new FakeLayer(fake, doc, { name: "Layer 1" });
        doc.layers.push(layer);
        doc.activeLayers = [layer];
        fake.documents.push(doc);
        fake.activeDocument = doc;
        return doc;
      },
    };

    const constants = { ColorProfileType: { CUSTOM: "custom", NONE: "none", WORKING: "working" } };
    const module = { app, core, action, constants };
    if (fake.hasImaging) module.imaging = imaging;
    return module;
  }

  _batchPlayOne(d) {
    if (d._obj === "select" && d._target && d._target[0]._ref === "layer" && d._target[0]._id !== undefined) {
      this._requireModal("select layer");
      const ref = d._target.find((t) => t._ref === "document");
      const doc = ref ? this._document(ref._id) : this.activeDocument;
      if (doc !== this.activeDocument) throw new Error("fake: selecting a layer in a background document is not modelled");
      const layer = doc.layerById(d._target[0]._id);
      doc._change("Select Layer");
      doc.activeLayers = [layer];
      return {};
    }
    throw new Error(`fake: batchPlay ${JSON.stringify(d).slice(0, 120)} is not modelled`);
  }
}

class FakeImageData {
  constructor(fake, { width, height, components, componentSize, colorSpace, colorProfile, native }) {
    this._fake = fake;
    this._bytes = native.byteLength;
    fake._allocate(this._bytes);
    Object.assign(this, { width, height, components, componentSize, colorSpace, colorProfile });
    this.hasAlpha = colorSpace === "RGB" ? components === 4 : components === 2;
    this.isChunky = true;
    this.pixelFormat = colorSpace === "Grayscale" ? (components === 2 ? "GrayA" : "Gray") : components === 4 ? "RGBA" : "RGB";
    this.type = "image/uncompressed";
    this._native = native;
  }

  _check() {
    if (!this._native) throw new Error("The image data was disposed");
  }

  async getData(options = {}) {
    this._check();
    const chunky = options.chunky !== false;
    const src = this._native;
    let out;
    if (this.componentSize === 16 && options.fullRange) {
      out = new Uint16Array(src.length);
      for (let i = 0; i < src.length; i++) out[i] = FULL[src[i]];
    } else out = src.slice();
    if (!chunky) {
      const planar = new out.constructor(out.length);
      const n = this.width * this.height;
      for (let i = 0; i < n; i++) for (let c = 0; c < this.components; c++) planar[c * n + i] = out[i * this.components + c];
      out = planar;
    }
    return out;
  }

  dispose() {
    if (this._native) {
      this._native = null;
      this._fake._free(this._bytes);
    }
  }
}

class FakeLayer {
  constructor(fake, doc, { name, background = false }) {
    this._fake = fake;
    this._doc = doc;
    this.id = fake.nextId++;
    this._name = name;
    this.kind = "pixel";
    this.isBackgroundLayer = background;
    this.channels = background ? 3 : 4;
    this._visible = true;
    this.data = null;
    this.rect = null;
    this.userMask = null;
  }

  allocate() {
    this.data = new TYPES[this._doc.depth](this._doc.width * this._doc.height * this.channels);
    return this.data;
  }

  get name() {
    return this._name;
  }

  set name(v) {
    this._fake._requireModal("layer.name");
    this._doc._change("Rename Layer").touch(this);
    this._name = v;
  }

  get visible() {
    return this._visible;
  }

  set visible(v) {
    this._fake._requireModal("layer.visible");
    this._doc._change("Hide Layer").touch(this);
    this._visible = Boolean(v);
  }

  /** The bounds of the pixels inside `area` that are not fully transparent, or null. */
  pixelBounds(area) {
    if (!area || !this.data) return null;
    if (this.channels === 3) return area;
    const W = this._doc.width;
    let left = area.right, top = area.bottom, right = area.left, bottom = area.top;
    for (let y = area.top; y < area.bottom; y++) {
      for (let x = area.left; x < area.right; x++) {
        if (this.data[(y * W + x) * 4 + 3] !== 0) {
          left = Math.min(left, x);
          right = Math.max(right, x + 1);
          top = Math.min(top, y);
          bottom = Math.max(bottom, y + 1);
        }
      }
    }
    return right > left ? { left, top, right, bottom } : null;
  }

  get boundsNoEffects() {
    return withSize(this.pixelBounds(this.rect) || { left: 0, top: 0, right: 0, bottom: 0 });
  }

  get bounds() {
    return this.boundsNoEffects;
  }
}

/** Copy-on-write record of a document before a history step, to roll back or undo it. */
class Snapshot {
  constructor(doc) {
    this.doc = doc;
    this.layers = doc.layers.slice();
    this.activeLayers = doc.activeLayers.slice();
    this.saved = new Map();
  }

  touch(layer) {
    if (!this.saved.has(layer)) {
      this.saved.set(layer, { data: layer.data && layer.data.slice(), rect: layer.rect, userMask: layer.userMask && layer.userMask.slice(), visible: layer._visible, name: layer._name });
    }
  }

  restore() {
    for (const [layer, s] of this.saved) Object.assign(layer, { data: s.data, rect: s.rect, userMask: s.userMask, _visible: s.visible, _name: s.name });
    this.doc.layers = this.layers;
    this.doc.activeLayers = this.activeLayers;
  }
}

class FakeDocument {
  constructor(fake, { width, height, depth, mode, profile, title, resolution }) {
    this._fake = fake;
    this.id = fake.nextId++;
    this.title = title;
    this.width = width;
    this.height = height;
    this.depth = depth;
    this.mode = mode;
    this.bitsPerChannel = DEPTH_NAMES[depth];
    this.profile = profile; // null: untagged
    this.resolution = resolution;
    this.layers = [];
    this.activeLayers = [];
    this.selectionData = null;
    this.historyStates = [];
    this.suspension = null;
    const doc = this;
    this.selection = {
      get bounds() {
        return doc._selectionBounds();
      },
    };
  }

  get colorProfileType() {
    return this.profile ? "custom" : "none";
  }

  set colorProfileType(type) {
    this._fake._requireModal("colorProfileType");
    if (type !== "none") throw new Error("fake: only removing a profile is modelled");
    this.profile = null;
  }

  /** Photoshop's answer: "None" for an untagged document. */
  get colorProfileName() {
    return this.profile || "None";
  }

  /** What pixels of an untagged document are read and written in: the working space. */
  get effectiveProfile() {
    return this.profile || this._fake.workingProfile;
  }

  layerById(id) {
    const layer = this.layers.find((l) => l.id === id);
    if (!layer) throw new Error(`No layer with id ${id}`);
    return layer;
  }

  _selectionBounds() {
    const s = this.selectionData;
    if (!s) return null;
    let left = this.width, top = this.height, right = 0, bottom = 0;
    for (let y = 0; y < this.height; y++) {
      const row = s.subarray(y * this.width, (y + 1) * this.width);
      let first = -1;
      for (let x = 0; x < this.width; x++) if (row[x]) { first = x; break; }
      if (first < 0) continue;
      let last = first;
      for (let x = this.width - 1; x > first; x--) if (row[x]) { last = x; break; }
      left = Math.min(left, first);
      right = Math.max(right, last + 1);
      top = Math.min(top, y);
      bottom = y + 1;
    }
    return right > left ? withSize({ left, top, right, bottom }) : null;
  }

  /** The snapshot a change records into: the suspended one, or a new history state. */
  _change(name) {
    if (this.suspension) return this.suspension.snapshot;
    const snapshot = new Snapshot(this);
    this.historyStates.push({ name, snapshot });
    return snapshot;
  }

  async createLayer(options = {}) {
    this._fake._requireModal("createLayer");
    this._change("New Layer");
    const layer = new FakeLayer(this._fake, this, { name: options.name || `Layer ${this.layers.length}` });
    const above = this.activeLayers[0] ? this.layers.indexOf(this.activeLayers[0]) + 1 : this.layers.length;
    this.layers.splice(above, 0, layer);
    this.activeLayers = [layer];
    return layer;
  }

  async closeWithoutSaving() {
    this._fake._requireModal("closeWithoutSaving");
    this._fake.closeDocument(this);
  }
}

class FakeExecutionContext {
  constructor(fake, options) {
    this._fake = fake;
    this.isCancelled = false;
    this.onCancel = null;
    this.open = new Map();
    this.autoClose = new Set();
    const ctx = this;
    this.hostControl = {
      async registerAutoCloseDocument(documentID) {
        fake._document(documentID);
        ctx.autoClose.add(documentID);
      },
      async unregisterAutoCloseDocument(documentID) {
        ctx.autoClose.delete(documentID);
      },
      async suspendHistory({ documentID, name }) {
        const doc = fake._document(documentID);
        if (doc.suspension) throw new Error("History is already suspended for this document");
        const id = fake.nextId++;
        doc.suspension = { id, name, snapshot: new Snapshot(doc) };
        ctx.open.set(id, doc);
        return id;
      },
      async resumeHistory(id, commit = true) {
        const doc = ctx.open.get(id);
        if (!doc) throw new Error(`Unknown history suspension ${id}`);
        ctx.open.delete(id);
        const { name, snapshot } = doc.suspension;
        doc.suspension = null;
        if (commit) doc.historyStates.push({ name, snapshot });
        else snapshot.restore();
      },
    };
  }

  reportProgress() {}

  _closeRegistered() {
    for (const id of this.autoClose) {
      const doc = this._fake.documents.find((d) => d.id === id);
      if (doc) this._fake.closeDocument(doc);
    }
    this.autoClose.clear();
  }

  _rollbackAll() {
    for (const [id, doc] of this.open) {
      if (doc.suspension && doc.suspension.id === id) {
        doc.suspension.snapshot.restore();
        doc.suspension = null;
      }
    }
    this.open.clear();
  }
}

module.exports = { FakePhotoshop, toFull, toNative };
