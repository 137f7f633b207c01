"use strict";
/**
 * Minimal stand-ins for the UXP Spectrum widgets the panel uses (sp-button, sp-picker, …), so
 * the panel's HTML renders and behaves in a test browser. Each exposes the same properties the
 * panel touches in Photoshop (value, selectedIndex, disabled; "change"/"click" events) and, like
 * the real widgets, swallows clicks while disabled.
 */
const BASE = `
  :host { box-sizing: border-box; font: 12px "Segoe UI", "Helvetica Neue", sans-serif; color: #e0e0e0; }
  :host([disabled]) { opacity: .45; }
  input, select, textarea, button { font: inherit; color: #e8e8e8; background: #1f1f1f; border: 1px solid #5a5a5a; border-radius: 4px; box-sizing: border-box; }
  input, select { height: 24px; padding: 0 6px; width: 100%; }
  textarea { width: 100%; height: 100%; padding: 4px 6px; resize: none; }
`;

function define(name, make) {
  if (!customElements.get(name)) customElements.define(name, make());
}

class SpElement extends HTMLElement {
  constructor(css, html) {
    super();
    const root = this.attachShadow({ mode: "open" });
    root.innerHTML = `<style>${BASE}${css}</style>${html}`;
    this.addEventListener("click", (e) => {
      if (this.hasAttribute("disabled")) e.stopImmediatePropagation();
    }, true);
  }
  get disabled() {
    return this.hasAttribute("disabled");
  }
  set disabled(v) {
    if (v) this.setAttribute("disabled", "");
    else this.removeAttribute("disabled");
  }
}

const buttonCss = (quiet) => `
  :host { display: inline-block; }
  button { height: 28px; padding: 0 14px; border-radius: 14px; border: 2px solid #b3b3b3; background: transparent; font-weight: 600; cursor: pointer; }
  :host([variant="cta"]) button { background: #1473e6; border-color: #1473e6; color: #fff; }
  :host([variant="primary"]) button { background: #e0e0e0; border-color: #e0e0e0; color: #1f1f1f; }
  ${quiet ? "button { border: none; height: 24px; padding: 0 8px; border-radius: 4px; font-weight: 400; background: #3d3d3d; }" : ""}
`;
define("sp-button", () => class extends SpElement {
  constructor() { super(buttonCss(false), "<button><slot></slot></button>"); }
});
define("sp-action-button", () => class extends SpElement {
  constructor() { super(buttonCss(true), "<button><slot></slot></button>"); }
});

const fieldMixin = (tag) => class extends SpElement {
  constructor() {
    super(":host { display: inline-block; }", tag === "textarea" ? "<textarea></textarea>" : "<input>");
    this.input = this.shadowRoot.querySelector(tag);
    this.input.addEventListener("input", () => this.dispatchEvent(new Event("input", { bubbles: true })));
    this.input.addEventListener("change", () => this.dispatchEvent(new Event("change", { bubbles: true })));
  }
  connectedCallback() {
    if (this.hasAttribute("value") && !this.input.value) this.input.value = this.getAttribute("value");
    if (this.hasAttribute("placeholder")) this.input.placeholder = this.getAttribute("placeholder");
    if (this.getAttribute("type") === "number") this.input.type = "number";
  }
  get value() { return this.input.value; }
  set value(v) { this.input.value = v; }
  set disabled(v) { super.disabled = v; this.input.disabled = Boolean(v); }
  get disabled() { return super.disabled; }
};
define("sp-textfield", () => fieldMixin("input"));
define("sp-textarea", () => fieldMixin("textarea"));

define("sp-picker", () => class extends SpElement {
  constructor() {
    super(":host { display: inline-block; } ::slotted(*) { display: none; }", "<select></select><slot></slot>");
    this.select = this.shadowRoot.querySelector("select");
    this.select.addEventListener("change", () => this.dispatchEvent(new Event("change", { bubbles: true })));
    this.observer = new MutationObserver(() => this.sync());
  }
  connectedCallback() {
    this.observer.observe(this, { childList: true, subtree: true, attributes: true, characterData: true });
    this.sync();
  }
  sync() {
    const items = Array.from(this.querySelectorAll("sp-menu-item"));
    const chosen = items.findIndex((i) => i.hasAttribute("selected"));
    this.select.innerHTML = "";
    for (const item of items) {
      const o = document.createElement("option");
      o.textContent = item.textContent;
      this.select.appendChild(o);
    }
    if (chosen >= 0) this.select.selectedIndex = chosen;
  }
  get selectedIndex() { return this.select.selectedIndex; }
  set selectedIndex(i) { this.sync(); this.select.selectedIndex = i; }
  set disabled(v) { super.disabled = v; this.select.disabled = Boolean(v); }
  get disabled() { return super.disabled; }
});
define("sp-menu", () => class extends HTMLElement {});
define("sp-menu-item", () => class extends HTMLElement {});

define("sp-slider", () => class extends SpElement {
  constructor() {
    super(":host { display: inline-flex; align-items: center; } input { flex: 1; height: 16px; padding: 0; } span { width: 34px; text-align: right; }", "<input type=range><span></span>");
    this.input = this.shadowRoot.querySelector("input");
    this.label = this.shadowRoot.querySelector("span");
    this.input.addEventListener("input", () => {
      this.label.textContent = this.input.value;
      this.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }
  connectedCallback() {
    for (const a of ["min", "max", "step"]) if (this.hasAttribute(a)) this.input.setAttribute(a, this.getAttribute(a));
    if (this.hasAttribute("value")) this.value = this.getAttribute("value");
  }
  get value() { return Number(this.input.value); }
  set value(v) { this.input.value = v; this.label.textContent = this.input.value; }
  set disabled(v) { super.disabled = v; this.input.disabled = Boolean(v); }
  get disabled() { return super.disabled; }
});

define("sp-progressbar", () => class extends SpElement {
  constructor() {
    super(":host { display: block; } div { height: 4px; background: #4a4a4a; border-radius: 2px; margin-top: 4px; } i { display: block; height: 100%; width: 0; background: #378ef0; border-radius: 2px; }", "<div><i></i></div>");
    this.bar = this.shadowRoot.querySelector("i");
    this._value = 0;
  }
  get value() { return this._value; }
  set value(v) { this._value = Number(v); this.bar.style.width = `${Math.max(0, Math.min(100, this._value))}%`; }
});

for (const [name, css] of [
  ["sp-label", ":host { display: inline-block; color: #b8b8b8; }"],
  ["sp-detail", ":host { display: inline-block; color: #b8b8b8; font-size: 11px; }"],
  ["sp-body", ":host { display: block; font-size: 12px; }"],
  ["sp-divider", ":host { display: block; height: 1px; background: #4a4a4a; margin: 6px 0; }"],
]) {
  define(name, () => class extends SpElement {
    constructor() { super(css, "<slot></slot>"); }
  });
}
