"use strict";
/**
 * What the panel says about the server's models (`GET /v1/models`, `/v1/info`) and about where a
 * job runs on a cluster (`runs_on` in progress, `cluster` in /v1/info). Pure (no DOM), so every
 * case is tested with the documented shapes; a Ray cluster is too slow to start in a panel test.
 * The server has no call to switch models: the panel only says how (`seamwise models default`,
 * then a restart).
 */

/** One line per model found: name and family, the default marked, unsupported ones with their note. */
function modelRows(answer) {
  const models = (answer && Array.isArray(answer.models)) ? answer.models : [];
  const inUse = answer && answer.in_use;
  return models.map((m) => {
    const name = String(m.name || m.id || "?");
    const family = m.family_name ? ` (${m.family_name})` : "";
    const marks = [m.default ? "default" : null, name === inUse || m.id === inUse ? "in use" : null].filter(Boolean);
    const tail = m.supported === false ? ` – ${m.note || "not supported"}` : "";
    return { text: `${name}${family}${marks.length ? ` · ${marks.join(", ")}` : ""}${tail}`, supported: m.supported !== false, isDefault: !!m.default };
  });
}

/** The sentence that says a restart is needed when the default model is not the one in use, else null. */
function restartNote(answer) {
  const models = (answer && Array.isArray(answer.models)) ? answer.models : [];
  const def = models.find((m) => m.default);
  if (!def || !answer.in_use || def.name === answer.in_use || def.id === answer.in_use) return null;
  return `The default model is ${def.name} but the server still uses ${answer.in_use}: restart the server to switch (seamwise models default ${def.id || def.name} sets the default, seamwise serve starts with it).`;
}

/** Why the server cannot render, in its own words: `model_error` and its `advice` lines. [] while
 * it can (its model loaded and the last job did not fail): advice about a working machine would
 * only be noise under the status. */
function adviceLines(info, lastJobFailed = false) {
  if (!info || !(info.model_error || lastJobFailed)) return [];
  const lines = [];
  const error = info.model_error ? String(info.model_error) : null;
  if (error) lines.push(`The model did not load: ${error}`);
  // the server's advice repeats the error in its own line: not twice
  for (const a of Array.isArray(info.advice) ? info.advice : []) if (!error || !String(a).includes(error)) lines.push(String(a));
  return lines;
}

/** Where a running job renders on a cluster: box and actor, a retry, a split frame. "" without `runs_on`. */
function runsOnCaption(runsOn) {
  if (!runsOn || !runsOn.actor) return "";
  const where = `${runsOn.box || runsOn.node || "?"} (${runsOn.actor})`;
  const text = runsOn.attempt > 1 ? `retried on ${where}, attempt ${runsOn.attempt}` : `on ${where}`;
  const helpers = Array.isArray(runsOn.helpers) ? runsOn.helpers.length : 0;
  return helpers > 0 ? `${text}, split across ${helpers + 1} actors` : text;
}

/** The cluster's load for the status line ("cluster: 2/4 actors busy"), "" on a single server. */
function clusterLoad(cluster) {
  if (!cluster || !Number.isFinite(cluster.actors)) return "";
  const nodes = Number.isFinite(cluster.nodes) ? ` on ${cluster.nodes} box${cluster.nodes === 1 ? "" : "es"}` : "";
  return `cluster: ${cluster.busy || 0}/${cluster.actors} actors busy${nodes}`;
}

module.exports = { modelRows, restartNote, adviceLines, runsOnCaption, clusterLoad };
