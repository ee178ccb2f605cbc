// Loads the webview's classic scripts under node for the tests in this folder
// (not a test file itself: `node --test` only runs *.test.mjs here).
import { readFileSync } from "node:fs";
import vm from "node:vm";

/** core.js evaluated in a bare context: a `window`, and only the globals a
 *  test passes (document, fetch, …) on top of what every test needs. */
export function loadCore(globals = {}) {
  const window = { __TAURI__: {} };
  const context = vm.createContext({ window, document: {}, Intl, console, ...globals });
  vm.runInContext(readFileSync(new URL("../../ui/js/core.js", import.meta.url), "utf8"), context);
  return window.WL;
}

/** Objects made inside the context have its Object.prototype, which strict
 *  deep equality tells apart from ours: compare their JSON instead. */
export const plain = (value) => JSON.parse(JSON.stringify(value));

// ------------------------------------------------------------- fake DOM ----

// Just the DOM that h(), setText(), follower() and logTail() touch: nodes in a
// tree, attributes, text, fragments and event listeners.

export class FakeNode {
  parent = null;

  remove() {
    if (!this.parent) return;
    const siblings = this.parent.childNodes;
    siblings.splice(siblings.indexOf(this), 1);
    this.parent = null;
  }
}

class FakeText extends FakeNode {
  constructor(text) {
    super();
    this.textContent = text;
  }
}

class FakeElement extends FakeNode {
  childNodes = [];
  attributes = new Map();
  dataset = {};
  listeners = {};
  scrollTop = 0;
  scrollHeight = 0;
  clientHeight = 0;

  constructor(tag) {
    super();
    this.tagName = tag.toUpperCase();
  }

  setAttribute(name, value) {
    this.attributes.set(name, String(value));
  }

  getAttribute(name) {
    return this.attributes.has(name) ? this.attributes.get(name) : null;
  }

  get className() {
    return this.getAttribute("class") || "";
  }

  get children() {
    return this.childNodes.filter((n) => n instanceof FakeElement);
  }

  get firstElementChild() {
    return this.children[0] || null;
  }

  get textContent() {
    return this.childNodes.map((n) => n.textContent).join("");
  }

  set textContent(text) {
    this.replaceChildren(...(text === "" ? [] : [new FakeText(text)]));
  }

  append(...nodes) {
    for (const node of nodes) {
      // A fragment hands over its children, as in the DOM.
      if (node instanceof FakeFragment) this.append(...node.childNodes);
      else {
        const child = typeof node === "string" ? new FakeText(node) : node;
        child.remove();
        child.parent = this;
        this.childNodes.push(child);
      }
    }
  }

  replaceChildren(...nodes) {
    for (const child of [...this.childNodes]) child.remove();
    this.append(...nodes);
  }

  addEventListener(type, fn) {
    (this.listeners[type] = this.listeners[type] || []).push(fn);
  }
}

class FakeFragment extends FakeElement {
  constructor() {
    super("#fragment");
  }
}

export const fakeDocument = {
  createElement: (tag) => new FakeElement(tag),
  createTextNode: (text) => new FakeText(text),
  createDocumentFragment: () => new FakeFragment(),
};
