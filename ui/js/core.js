// Warmline UI core: DOM helpers, number formatting, the data store every view
// reads from, command errors, toasts, NDJSON streams and the display ticker.
//
// Every file under ui/ is a classic `defer` script that adds to `window.WL`; this
// one loads first. No framework: views keep their DOM and update text in place,
// so a push every second never rebuilds what the user is looking at.

"use strict";

(function () {
  const WL = (window.WL = window.WL || {});
  WL.pushes = 0; // warmline://status events received (app.js counts; e2e tests read it)
  const tauri = window.__TAURI__;

  // ---------------------------------------------------------------- DOM -------

  const $ = (id) => document.getElementById(id);

  /** Builds an element. `props`: class, text, dataset; anything else becomes an
   *  attribute (`true` sets it empty, `false`/null leaves it out). Children are
   *  nodes or text (never parsed as HTML). */
  function h(tag, props, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key === "class") el.setAttribute("class", value);
      else if (key === "text") el.textContent = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child == null || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  /** Writes text only when it differs, so unchanged numbers cause no DOM work. */
  function setText(el, text) {
    const value = text == null ? "" : String(text);
    if (el.textContent !== value) el.textContent = value;
  }

  function setHidden(el, hidden) {
    if (el.hidden !== Boolean(hidden)) el.hidden = Boolean(hidden);
  }

  function setDisabled(el, disabled) {
    if (el.disabled !== Boolean(disabled)) el.disabled = Boolean(disabled);
  }

  function setAttr(el, name, value) {
    if (value == null || value === false) {
      if (el.hasAttribute(name)) el.removeAttribute(name);
    } else {
      const text = value === true ? "" : String(value);
      if (el.getAttribute(name) !== text) el.setAttribute(name, text);
    }
  }

  /** Sets the whole class attribute, only when it differs: an unchanged write
   *  still invalidates style and costs the idle window a repaint. */
  function setClass(el, value) {
    if (el.className !== value) el.className = value;
  }

  /** Sets `data-<key>` only when it differs (see setClass). */
  function setData(el, key, value) {
    const text = String(value);
    if (el.dataset[key] !== text) el.dataset[key] = text;
  }

  function toggleClass(el, name, on) {
    if (el.classList.contains(name) !== Boolean(on)) el.classList.toggle(name, Boolean(on));
  }

  /** Marks a button unavailable *with a reason*. aria-disabled (not `disabled`)
   *  keeps it focusable and lets its tooltip show, so the reason is discoverable;
   *  click handlers check `isUnavailable` first. `null` makes it available. */
  function setUnavailable(button, reason) {
    setAttr(button, "aria-disabled", reason ? "true" : null);
    setAttr(button, "title", reason || button.dataset.title || null);
  }

  function isUnavailable(button) {
    return button.getAttribute("aria-disabled") === "true" || button.disabled;
  }

  /** Updates a list of keyed children in place: rows that stay keep their
   *  elements (and focus), new ones are created, gone ones removed. */
  function syncChildren(parent, items, keyOf, create, update) {
    const existing = new Map();
    for (const child of parent.children) {
      if (child.dataset.key != null) existing.set(child.dataset.key, child);
      else child.remove();
    }
    items.forEach((item, index) => {
      const key = String(keyOf(item));
      let child = existing.get(key);
      if (child) existing.delete(key);
      else {
        child = create(item);
        child.dataset.key = key;
      }
      update(child, item);
      // Move only when out of place: moving a node can drop focus inside it.
      if (parent.children[index] !== child) parent.insertBefore(child, parent.children[index] || null);
    });
    existing.forEach((child) => child.remove());
  }

  // ---------------------------------------------------------- formatting ------

  const DASH = "—";
  const countFormat = new Intl.NumberFormat();
  const isNum = (v) => typeof v === "number" && Number.isFinite(v);

  const fmt = {
    count(n) {
      return isNum(n) ? countFormat.format(n) : DASH;
    },
    /** Milliseconds, with the precision a person reads: 0.42 ms, 4.2 ms, 42 ms, 4.20 s. */
    ms(v) {
      if (!isNum(v)) return DASH;
      if (v >= 60_000) return fmt.duration(v / 1000);
      if (v >= 1000) return `${(v / 1000).toFixed(2)} s`;
      if (v >= 10) return `${Math.round(v)} ms`;
      if (v >= 1) return `${v.toFixed(1)} ms`;
      return `${v.toFixed(2)} ms`;
    },
    /** Bytes in binary units, as the settings write them (256 MiB). */
    bytes(n) {
      if (!isNum(n)) return DASH;
      const units = ["B", "KiB", "MiB", "GiB", "TiB"];
      let value = n;
      let unit = 0;
      while (value >= 1024 && unit < units.length - 1) {
        value /= 1024;
        unit += 1;
      }
      const digits = unit === 0 || value >= 100 ? 0 : 1;
      return `${value.toFixed(digits)} ${units[unit]}`;
    },
    /** A share 0..1 as a percentage. */
    pct(r) {
      if (!isNum(r)) return DASH;
      const p = r * 100;
      return `${p >= 99.95 || p === 0 ? p.toFixed(0) : p.toFixed(1)} %`;
    },
    rate(perSecond) {
      if (!isNum(perSecond)) return DASH;
      return `${perSecond >= 100 ? Math.round(perSecond) : perSecond.toFixed(1)}/s`;
    },
    /** A span of seconds: 42 s, 4 m 05 s, 3 h 12 m, 2 d 4 h. */
    duration(seconds) {
      if (!isNum(seconds)) return DASH;
      const s = Math.max(0, Math.floor(seconds));
      const pad = (n) => String(n).padStart(2, "0");
      if (s < 60) return `${s} s`;
      if (s < 3600) return `${Math.floor(s / 60)} m ${pad(s % 60)} s`;
      if (s < 86_400) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} m`;
      return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
    },
    /** How long something has been up, to the minute: < 1 min, 4 min, 3 h 12 m.
     *  Minutes are what a person reads here, and a label that changes once a
     *  minute instead of every second spares the idle window a repaint. */
    uptime(seconds) {
      if (!isNum(seconds)) return DASH;
      if (seconds < 60) return "< 1 min";
      if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
      return fmt.duration(seconds);
    },
    /** A health probe's round trip as a bound on a 1-2-5 ladder (< 1 ms,
     *  < 2 ms, < 5 ms, < 10 ms, …): the order of magnitude is what a probe
     *  tells, and a bound does not flicker with every probe a second. */
    probe(ms) {
      if (!isNum(ms)) return DASH;
      for (let decade = 1; decade < 1e6; decade *= 10) {
        for (const step of [1, 2, 5]) {
          const bound = step * decade;
          if (ms < bound) return bound < 1000 ? `< ${bound} ms` : `< ${bound / 1000} s`;
        }
      }
      return fmt.ms(ms);
    },
    /** Wall-clock time of a Unix millisecond stamp, 24 h with seconds. */
    clock(ms) {
      if (!isNum(ms) || ms <= 0) return DASH;
      return new Date(ms).toLocaleTimeString([], { hour12: false });
    },
    percentCpu(p) {
      return isNum(p) ? `${p.toFixed(p >= 100 ? 0 : 1)} %` : DASH;
    },
  };

  /** Parses an RFC 3339 stamp as Ollama writes it (nanoseconds, any offset).
   *  Fractions are cut to milliseconds first: not every engine parses nine digits. */
  function parseStamp(text) {
    if (typeof text !== "string") return null;
    const trimmed = text.replace(/(\.\d{3})\d+/, "$1");
    const t = Date.parse(trimmed);
    return Number.isNaN(t) ? null : t;
  }

  // --------------------------------------------------------------- store ------

  // The latest of each pushed snapshot. Views subscribe to topics; `set` notifies.
  const store = {
    status: null, // AppStatus
    models: null, // ModelView[]
    charts: null, // { window, svgs }
    activity: null, // { requests, logs, daemon_logs, cache }
    settings: null, // { settings: RawConfig, autostart }
  };
  const subscribers = {};

  function on(topic, fn) {
    (subscribers[topic] = subscribers[topic] || []).push(fn);
  }

  function set(topic, value) {
    store[topic] = value;
    for (const fn of subscribers[topic] || []) {
      // One view failing to draw must not stop the others (or the header).
      try {
        fn(value);
      } catch (err) {
        console.error(`rendering ${topic} failed`, err);
      }
    }
  }

  /** The URL to reach the gateway from this window. A wildcard listen address
   *  is not a place to connect to, so it becomes loopback. */
  function gatewayBase() {
    const status = store.status;
    if (!status || status.state !== "running" || !status.listen) return null;
    return status.listen
      .replace(/\/+$/, "")
      .replace("://0.0.0.0", "://127.0.0.1")
      .replace("://[::]", "://[::1]");
  }

  // ------------------------------------------------------------- commands -----

  /** Every command error as {code, message, hint?, field?}, whatever rejected. */
  function normalizeError(err) {
    if (err && err.name === "AbortError") return { code: "aborted", message: "Cancelled.", hint: null, field: null };
    if (err && typeof err === "object" && typeof err.message === "string") {
      return {
        // A DOMException's numeric legacy `code` is no label: only strings count.
        code: typeof err.code === "string" ? err.code : "error",
        message: err.message,
        hint: err.hint || null,
        field: err.field || null,
      };
    }
    return { code: "shell", message: String(err), hint: null, field: null };
  }

  function invoke(command, args) {
    if (!tauri || !tauri.core) {
      return Promise.reject({
        code: "no_shell",
        message: "This page talks to the Warmline app and cannot run in a plain browser.",
      });
    }
    return tauri.core.invoke(command, args).catch((err) => {
      throw normalizeError(err);
    });
  }

  function listen(event, handler) {
    if (!tauri || !tauri.event) return Promise.resolve(() => {});
    return tauri.event.listen(event, (e) => handler(e.payload));
  }

  // --------------------------------------------------------------- toasts -----

  const MAX_TOASTS = 4;

  /** Shows a short message at the bottom right. Errors stay until dismissed:
   *  a failure the user did not see is a failure swallowed. */
  function toast(message, { tone = "info", hint = null, title = null } = {}) {
    const box = $("toasts");
    if (!box) return;
    const dismiss = h("button", { type: "button", class: "icon-button", "aria-label": "Dismiss" }, "×");
    const item = h(
      "div",
      // The container is a polite live region; errors interrupt (role=alert).
      { class: `toast ${tone}`, role: tone === "bad" ? "alert" : null },
      h(
        "div",
        { class: "toast-body" },
        title && h("p", { class: "toast-title", text: title }),
        h("p", { text: message }),
        hint && h("p", { class: "toast-hint", text: hint }),
      ),
      dismiss,
    );
    const remove = () => item.remove();
    dismiss.addEventListener("click", remove);
    box.append(item);
    while (box.children.length > MAX_TOASTS) box.firstElementChild.remove();
    if (tone !== "bad") setTimeout(remove, 5000);
  }

  function toastError(err, title) {
    const e = normalizeError(err);
    toast(e.message, { tone: "bad", hint: e.hint, title });
  }

  // ------------------------------------------------------------ clipboard -----

  async function copyText(text) {
    try {
      await navigator.clipboard.writeText(text);
      return;
    } catch (_) {
      // Some webviews refuse the async clipboard outside a secure context; the
      // selection-based copy below works there.
    }
    const area = h("textarea", { class: "visually-hidden", "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    if (!ok) throw { code: "clipboard", message: "The clipboard is not available here." };
  }

  // ---------------------------------------------------------- HTTP streams ----

  /** Yields one parsed object per NDJSON line, handling lines split across
   *  chunks. Aborting the fetch's signal makes the pending read reject. */
  async function* ndjson(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const parse = (line) => {
      try {
        return JSON.parse(line);
      } catch (_) {
        throw { code: "bad_stream", message: `The gateway sent a line that is not JSON: ${line.slice(0, 120)}` };
      }
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          if (line) yield parse(line);
        }
      }
      buffer += decoder.decode();
      if (buffer.trim()) yield parse(buffer.trim());
    } finally {
      reader.releaseLock();
    }
  }

  /** The error of a non-2xx answer: Ollama's `{"error": "..."}` when it is one. */
  async function httpError(response) {
    let text = "";
    try {
      text = await response.text();
      const body = JSON.parse(text);
      if (body && typeof body.error === "string") text = body.error;
      else if (body && body.error && typeof body.error.message === "string") text = body.error.message;
    } catch (_) {
      // Not JSON: the raw text (or nothing) is the best there is.
    }
    return { code: `http_${response.status}`, message: text || `HTTP ${response.status} ${response.statusText}` };
  }

  /** A fetch that failed before any answer: say where it tried to go. */
  function networkError(err, base) {
    const e = normalizeError(err);
    if (e.code === "aborted") return e;
    return {
      code: "unreachable",
      message: `Could not reach the gateway at ${base}: ${e.message}`,
      hint: "Check that the gateway is running (header) and not paused.",
    };
  }

  /** POSTs `body` as JSON to `base` + `path` and yields the answer's NDJSON
   *  lines. Throws what normalizeError reads: unreachable, http_<status> (with
   *  Ollama's message), bad_stream, or an abort of `signal` (before or during
   *  the body). `onHeaders` gets the headers before the status is judged, so
   *  a caller can read them off an error answer too. */
  async function* postNdjson(base, path, body, { signal, onHeaders } = {}) {
    let response;
    try {
      response = await fetch(`${base}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal,
      });
    } catch (err) {
      throw networkError(err, base);
    }
    if (onHeaders) onHeaders(response.headers);
    if (!response.ok) throw await httpError(response);
    yield* ndjson(response);
  }

  // ---------------------------------------------------- display ticker --------

  // One shared one-second tick for countdowns and uptimes. It only redraws from
  // data already held; it never asks the shell for anything.
  const tickers = new Set();
  let tickTimer = null;

  function onTick(fn) {
    tickers.add(fn);
    if (!tickTimer) tickTimer = setInterval(() => tickers.forEach((f) => f(Date.now())), 1000);
  }

  // ------------------------------------------------------ follow scrolling ----

  /** Keeps a scrolling log pinned to its newest line unless the user scrolled
   *  up to read. The flag is kept from scroll events, so it survives the log
   *  being hidden (a hidden element measures as zero). */
  function follower(el) {
    let following = true;
    el.addEventListener("scroll", () => {
      following = el.scrollHeight - el.scrollTop - el.clientHeight < 24;
    });
    return {
      after() {
        if (following) el.scrollTop = el.scrollHeight;
      },
      get following() {
        return following;
      },
      pin() {
        following = true;
        el.scrollTop = el.scrollHeight;
      },
    };
  }

  // ------------------------------------------------------------ log tails -----

  /** One log line: its wall-clock time, then `parts`. `extraClass` (level,
   *  stream) is added to `log-line` when given. */
  function logLine(atMs, extraClass, ...parts) {
    const cls = extraClass ? `log-line ${extraClass}` : "log-line";
    return h("div", { class: cls }, h("time", {}, fmt.clock(atMs)), ...parts);
  }

  /** Renders a log tail (oldest first) into `box`, appending only the lines that
   *  are new since the last call, so a busy log costs a few nodes per push and
   *  text the user is selecting stays put. `key` identifies a line, `make`
   *  builds its element, `empty` is the text shown when there are none, and
   *  `count` (an element) captions how many lines there are. */
  function logTail(box, { key, make, empty, count }) {
    const follow = follower(box);
    let lastKey = null;
    let showsEmpty = false;
    const update = (lines) => {
      setText(count, lines.length ? `last ${fmt.count(lines.length)} lines` : "");
      if (!lines.length) {
        lastKey = null;
        if (!showsEmpty) box.replaceChildren(h("p", { class: "empty" }, empty));
        showsEmpty = true;
        return;
      }
      showsEmpty = false;
      let start = 0;
      if (lastKey != null) {
        let i = lines.length - 1;
        while (i >= 0 && key(lines[i]) !== lastKey) i -= 1;
        if (i === lines.length - 1) return; // nothing new
        if (i >= 0) start = i + 1;
        else box.replaceChildren(); // the tail moved past everything shown
      } else box.replaceChildren();
      const fragment = document.createDocumentFragment();
      for (const line of lines.slice(start)) fragment.append(make(line));
      box.append(fragment);
      // Shown lines = the tail's lines: older ones fall off the top as it does.
      while (box.children.length > lines.length) box.firstElementChild.remove();
      lastKey = key(lines[lines.length - 1]);
      follow.after();
    };
    return { update, follow };
  }

  // ----------------------------------------------------------- views ----------

  // A view registers { topics, init, render, shown }. Data for a hidden view only
  // marks it stale; it renders when shown. render() redraws from `store` alone.
  const views = {};
  let active = null;

  function view(name, spec) {
    views[name] = { ...spec, name, stale: true };
    (spec.topics || []).forEach((topic) =>
      on(topic, () => {
        const v = views[name];
        if (active === name) v.render();
        else v.stale = true;
      }),
    );
  }

  function showView(name) {
    active = name;
    const v = views[name];
    if (!v) return;
    if (v.stale) {
      v.stale = false;
      v.render();
    }
    if (v.shown) v.shown();
  }

  const isActive = (name) => active === name;

  function theme() {
    return window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
  }

  Object.assign(WL, {
    $,
    h,
    setText,
    setHidden,
    setAttr,
    setClass,
    setData,
    setDisabled,
    toggleClass,
    setUnavailable,
    isUnavailable,
    syncChildren,
    fmt,
    DASH,
    isNum,
    parseStamp,
    store,
    on,
    set,
    gatewayBase,
    normalizeError,
    invoke,
    listen,
    toast,
    toastError,
    copyText,
    postNdjson,
    onTick,
    follower,
    logLine,
    logTail,
    view,
    views,
    showView,
    isActive,
    theme,
  });
})();
