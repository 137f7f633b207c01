"use strict";
/** Checks of what a job left in a fake document. */
const assert = require("node:assert/strict");

/** A copy of a layer's native pixels, to prove later that they were not touched. */
function snapshotLayer(layer) {
  return layer.data.slice();
}

/**
 * The result layer must equal the source inside the selection (identity engine: bit-exact), carry
 * no pixels outside the job region, and have a mask that shows it only where the selection is.
 */
function assertIdentityResult({ doc, source, before, layer, region, selection }) {
  assert.ok(Buffer.from(source.data.buffer, source.data.byteOffset, source.data.byteLength)
    .equals(Buffer.from(before.buffer, before.byteOffset, before.byteLength)), "source layer changed");
  assert.deepEqual(
    { left: layer.boundsNoEffects.left, top: layer.boundsNoEffects.top, right: layer.boundsNoEffects.right, bottom: layer.boundsNoEffects.bottom },
    region,
    "result layer bounds",
  );
  const W = doc.width;
  const sc = source.channels;
  const lc = layer.channels;
  let inside = 0;
  let mismatches = 0;
  for (let y = 0; y < doc.height; y++) {
    for (let x = 0; x < W; x++) {
      const i = y * W + x;
      const inRegion = x >= region.left && x < region.right && y >= region.top && y < region.bottom;
      const sel = selection ? selection[i] : 255;
      if (!inRegion) {
        if (layer.data[i * lc + 3] !== 0) mismatches++; // transparent outside the region
        continue;
      }
      const shown = layer.userMask ? layer.userMask[i] : 255;
      if (shown !== (sel > 0 ? 255 : 0)) mismatches++;
      if (sel > 0) {
        inside++;
        for (let c = 0; c < 3; c++) if (layer.data[i * lc + c] !== source.data[i * sc + c]) mismatches++;
      }
    }
  }
  assert.equal(mismatches, 0, "result pixels or mask differ");
  assert.ok(inside > 0, "nothing was selected");
  return inside;
}

module.exports = { snapshotLayer, assertIdentityResult };
