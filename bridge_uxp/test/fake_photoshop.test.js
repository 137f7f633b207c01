"use strict";
/** The fake must behave as Adobe documents Photoshop's imaging API, or the other tests mean little. */
const test = require("node:test");
const assert = require("node:assert/strict");
const { FakePhotoshop, toFull, toNative } = require("./fakes/photoshop");

/** Reads happen inside a modal scope, as Photoshop requires. */
function read(ps, fn) {
  return ps.core.executeAsModal(fn, { commandName: "read" });
}

function setup(depth = 16) {
  const fake = new FakePhotoshop();
  const doc = fake.addDocument({ width: 20, height: 10, depth, fill: (x, y, c) => (depth === 32 ? x / 10 : (x * 100 + y * 7 + c) % (depth === 8 ? 256 : 32769)) });
  return { fake, ps: fake.module, doc, layer: doc.layers[0] };
}

test("16-bit: 0..32768 by default, 0..65535 with fullRange, and back without loss", async () => {
  for (let v = 0; v <= 32768; v++) assert.equal(toNative(toFull(v)), v);
  assert.equal(toFull(32768), 65535);
  const { ps, doc, layer } = setup(16);
  const { imageData } = await read(ps, () => ps.imaging.getPixels({ documentID: doc.id, layerID: layer.id, componentSize: 16 }));
  const native = await imageData.getData();
  const full = await imageData.getData({ fullRange: true });
  assert.ok(native.every((v) => v <= 32768));
  full.forEach((v, i) => assert.equal(v, toFull(native[i])));
  imageData.dispose();
});

test("getPixels trims sourceBounds to the layer's pixels and says so", async () => {
  const { fake, ps, doc } = setup(8);
  await ps.core.executeAsModal(async () => {
    const layer = await doc.createLayer({ name: "small" });
    const img = await ps.imaging.createImageDataFromBuffer(new Uint8Array(4 * 3 * 3).fill(9), { width: 4, height: 3, components: 3, colorSpace: "RGB", colorProfile: doc.profile });
    await ps.imaging.putPixels({ documentID: doc.id, layerID: layer.id, imageData: img, targetBounds: { left: 5, top: 2 } });
    img.dispose();
  });
  const layer = doc.layers[1];
  const { imageData, sourceBounds } = await read(ps, () => ps.imaging.getPixels({ documentID: doc.id, layerID: layer.id, sourceBounds: { left: 0, top: 0, right: 20, bottom: 10 } }));
  assert.deepEqual(sourceBounds, { left: 5, top: 2, right: 9, bottom: 5, width: 4, height: 3 });
  assert.equal(imageData.components, 4, "a normal layer has transparency");
  imageData.dispose();
  assert.equal(fake.memory.live, 0);
});

test("disposed data cannot be read; undisposed data counts against 600 MB", async () => {
  const { fake, ps, doc, layer } = setup(8);
  const { imageData } = await read(ps, () => ps.imaging.getPixels({ documentID: doc.id, layerID: layer.id }));
  imageData.dispose();
  await assert.rejects(imageData.getData(), /disposed/);
  fake.memory.limit = 100; // below one 20×10 RGB read (600 bytes)
  await assert.rejects(read(ps, () => ps.imaging.getPixels({ documentID: doc.id, layerID: layer.id })), /memory limit/);
});

test("changes need a modal scope; a second modal scope is refused with error 9", async () => {
  const { fake, ps, doc } = setup(8);
  await assert.rejects(doc.createLayer({ name: "x" }), /executeAsModal/);
  fake.otherPluginModal = true;
  await assert.rejects(ps.core.executeAsModal(async () => {}), (e) => e.number === 9);
});

test("suspended history is one step; a throw rolls it back; undo removes the step", async () => {
  const { fake, ps, doc } = setup(8);
  await ps.core.executeAsModal(async (ctx) => {
    const id = await ctx.hostControl.suspendHistory({ documentID: doc.id, name: "two layers" });
    await doc.createLayer({ name: "a" });
    await doc.createLayer({ name: "b" });
    await ctx.hostControl.resumeHistory(id);
  });
  assert.equal(doc.layers.length, 3);
  assert.equal(doc.historyStates.length, 1);
  await assert.rejects(ps.core.executeAsModal(async (ctx) => {
    await ctx.hostControl.suspendHistory({ documentID: doc.id, name: "broken" });
    await doc.createLayer({ name: "c" });
    throw new Error("boom");
  }), /boom/);
  assert.equal(doc.layers.length, 3, "rolled back");
  fake.undo(doc);
  assert.equal(doc.layers.length, 1);
});

test("putPixels replace:true clears the layer, replace:false only touches the target", async () => {
  const { ps, doc } = setup(8);
  const put = async (layer, left, replace) => {
    const img = await ps.imaging.createImageDataFromBuffer(new Uint8Array(3 * 2 * 2).fill(5), { width: 2, height: 2, components: 3, colorSpace: "RGB", colorProfile: doc.profile });
    await ps.imaging.putPixels({ documentID: doc.id, layerID: layer.id, imageData: img, replace, targetBounds: { left, top: 0 } });
    img.dispose();
  };
  await ps.core.executeAsModal(async () => {
    const layer = await doc.createLayer({ name: "x" });
    await put(layer, 0, false);
    await put(layer, 4, false);
    assert.deepEqual(layer.boundsNoEffects, { left: 0, top: 0, right: 6, bottom: 2, width: 6, height: 2 });
    await put(layer, 10, true);
    assert.deepEqual(layer.boundsNoEffects, { left: 10, top: 0, right: 12, bottom: 2, width: 2, height: 2 });
  });
});

test("putLayerMask replace:true creates the user mask, replace:false needs one; a foreign profile is not silently accepted", async () => {
  const { ps, doc } = setup(8);
  await ps.core.executeAsModal(async () => {
    const layer = await doc.createLayer({ name: "m" });
    const mask = await ps.imaging.createImageDataFromBuffer(new Uint8Array(4).fill(255), { width: 2, height: 2, components: 1, colorSpace: "Grayscale", colorProfile: "Gray Gamma 2.2" });
    await assert.rejects(ps.imaging.putLayerMask({ documentID: doc.id, layerID: layer.id, imageData: mask, replace: false }), /no user mask/);
    await ps.imaging.putLayerMask({ documentID: doc.id, layerID: layer.id, imageData: mask, targetBounds: { left: 1, top: 1 } });
    assert.equal(layer.userMask[1 * 20 + 1], 255);
    assert.equal(layer.userMask[0], 0, "hidden outside the data");
    await ps.imaging.putLayerMask({ documentID: doc.id, layerID: layer.id, imageData: mask, replace: false, targetBounds: { left: 5, top: 5 } });
    assert.equal(layer.userMask[1 * 20 + 1], 255, "replace:false keeps the rest");
    const rgb = await ps.imaging.createImageDataFromBuffer(new Uint8Array(12), { width: 2, height: 2, components: 3, colorSpace: "RGB", colorProfile: "Display P3" });
    await assert.rejects(ps.imaging.putPixels({ documentID: doc.id, layerID: layer.id, imageData: rgb }), /colour conversion/);
    mask.dispose();
    rgb.dispose();
  });
});

test("reads need a modal scope; getPixels trims to the pixels a layer has and refuses an area without any", async () => {
  const { ps, doc, layer } = setup(8);
  await assert.rejects(ps.imaging.getPixels({ documentID: doc.id, layerID: layer.id }), /executeAsModal/);
  await assert.rejects(ps.imaging.getSelection({ documentID: doc.id }), /executeAsModal/);
  await ps.core.executeAsModal(async () => {
    const top = await doc.createLayer({ name: "two stripes" });
    for (const y of [1, 7]) {
      const img = await ps.imaging.createImageDataFromBuffer(new Uint8Array(6 * 1 * 4).fill(200), { width: 6, height: 1, components: 4, colorSpace: "RGB", colorProfile: doc.profile });
      await ps.imaging.putPixels({ documentID: doc.id, layerID: top.id, imageData: img, replace: false, targetBounds: { left: 3, top: y } });
      img.dispose();
    }
  });
  const stripes = doc.layers[1];
  assert.deepEqual(stripes.boundsNoEffects, { left: 3, top: 1, right: 9, bottom: 8, width: 6, height: 7 });
  const got = await read(ps, () => ps.imaging.getPixels({ documentID: doc.id, layerID: stripes.id, sourceBounds: { left: 0, top: 0, right: 20, bottom: 4 } }));
  assert.deepEqual(got.sourceBounds, { left: 3, top: 1, right: 9, bottom: 2, width: 6, height: 1 });
  got.imageData.dispose();
  await assert.rejects(read(ps, () => ps.imaging.getPixels({ documentID: doc.id, layerID: stripes.id, sourceBounds: { left: 0, top: 3, right: 20, bottom: 6 } })), /no pixels/);
});

test("a cancelled modal scope refuses further calls and closes the documents registered to auto-close", async () => {
  const { fake, ps, doc } = setup(8);
  fake.cancelModalAfter = 2;
  let sawCancel = false;
  await assert.rejects(ps.core.executeAsModal(async (ctx) => {
    const made = await ps.app.createDocument({ width: 4, height: 4, depth: 8, fill: "transparent" });
    await ctx.hostControl.registerAutoCloseDocument(made.id);
    await made.createLayer({ name: "a" });
    try {
      await made.createLayer({ name: "b" });
    } finally {
      sawCancel = ctx.isCancelled;
    }
  }), /cancelled/);
  assert.ok(sawCancel);
  assert.deepEqual(fake.documents, [doc], "the new document was closed");
});

test("batchPlay without a document reference acts on the active document; untagged documents say None", async () => {
  const { fake, ps, doc } = setup(8);
  const other = fake.addDocument({ width: 4, height: 4, depth: 8, profile: null });
  assert.equal(other.colorProfileName, "None");
  await assert.rejects(ps.imaging.createImageDataFromBuffer(new Uint8Array(3), { width: 1, height: 1, components: 3, colorSpace: "RGB", colorProfile: "None" }), /Unknown color profile/);
  await ps.core.executeAsModal(async () => {
    const layer = await doc.createLayer({ name: "x" });
    await assert.rejects(ps.action.batchPlay([{ _obj: "select", _target: [{ _ref: "layer", _id: layer.id }] }], {}), /No layer/);
    await assert.rejects(ps.action.batchPlay([{ _obj: "select", _target: [{ _ref: "layer", _id: layer.id }, { _ref: "document", _id: doc.id }] }], {}), /background document/);
  });
});
