"use strict";
/**
 * A DOM just large enough for the panel's bindings (elements by id, children, attributes, click
 * and change listeners), for running the built panel in a bare JavaScript runtime where no
 * browser is at hand. It models no layout or rendering; the Chromium test covers those.
 */
class MiniElement {
  constructor(tag, id = "") {
    Object.assign(this, { tagName: tag.toUpperCase(), id, value: "", textContent: "", hidden: false, className: "", selectedIndex: -1, children: [], listeners: {}, attributes: new Map(), style: {} });
  }

  get firstChild() { return this.children[0] || null; }
  appendChild(child) { this.children.push(child); return child; }
  removeChild(child) { this.children.splice(this.children.indexOf(child), 1); return child; }
  querySelectorAll(tag) { return this.children.filter((c) => c.tagName === tag.toUpperCase()); }
  setAttribute(name, value) { this.attributes.set(name, String(value)); }
  removeAttribute(name) { this.attributes.delete(name); }
  hasAttribute(name) { return this.attributes.has(name); }
  getAttribute(name) { return this.attributes.has(name) ? this.attributes.get(name) : null; }
  addEventListener(type, fn) { (this.listeners[type] = this.listeners[type] || []).push(fn); }
  /** What a user's click or change does: runs the listeners, returns what they returned. */
  fire(type) { return (this.listeners[type] || []).map((fn) => fn({ type, target: this })); }
  get disabled() { return this.hasAttribute("disabled"); }
  set disabled(on) { if (on) this.setAttribute("disabled", ""); else this.removeAttribute("disabled"); }
}

function createMiniDocument() {
  const byId = new Map();
  return {
    getElementById(id) {
      if (!byId.has(id)) byId.set(id, new MiniElement("div", id));
      return byId.get(id);
    },
    createElement: (tag) => new MiniElement(tag),
  };
}

module.exports = { createMiniDocument, MiniElement };
