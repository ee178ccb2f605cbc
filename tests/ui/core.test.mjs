// Unit tests of the webview's pure helpers (ui/js/core.js): number formatting
// and the write-only-when-changed DOM setters that keep the idle window from
// repainting. Run with `node --test tests/ui/` (the top-level test command does).
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadCore } from "./harness.mjs";

const WL = loadCore();

/** An element stand-in that counts writes, as a MutationObserver would. */
function fakeElement() {
  const el = { writes: 0, _class: "", dataset: {} };
  Object.defineProperty(el, "className", {
    get: () => el._class,
    set: (v) => {
      el.writes += 1;
      el._class = v;
    },
  });
  el.dataset = new Proxy(
    {},
    {
      set(target, key, value) {
        el.writes += 1;
        target[key] = value;
        return true;
      },
    },
  );
  return el;
}

test("uptime reads to the minute, so it changes once a minute", () => {
  const { uptime } = WL.fmt;
  assert.equal(uptime(0), "< 1 min");
  assert.equal(uptime(59.9), "< 1 min");
  assert.equal(uptime(60), "1 min");
  assert.equal(uptime(61), "1 min");
  assert.equal(uptime(3599), "59 min");
  assert.equal(uptime(3600 + 6 * 60), "1 h 06 m");
  assert.equal(uptime(2 * 86_400 + 4 * 3600), "2 d 4 h");
  assert.equal(uptime(undefined), WL.DASH);
});

test("probe round trips are bounds on a 1-2-5 ladder", () => {
  const { probe } = WL.fmt;
  assert.equal(probe(0.3), "< 1 ms");
  assert.equal(probe(1), "< 2 ms");
  assert.equal(probe(1.9), "< 2 ms");
  assert.equal(probe(3), "< 5 ms");
  assert.equal(probe(7), "< 10 ms");
  assert.equal(probe(450), "< 500 ms");
  assert.equal(probe(1200), "< 2 s");
  assert.equal(probe(null), WL.DASH);
  // Jitter within a step reads the same, so the cell is not rewritten.
  assert.equal(probe(0.41), probe(0.87));
  assert.equal(probe(1.3), probe(1.6));
});

test("milliseconds and durations keep their precision rules", () => {
  const { ms, duration, pct, rate } = WL.fmt;
  assert.equal(ms(0.42), "0.42 ms");
  assert.equal(ms(4.2), "4.2 ms");
  assert.equal(ms(42.4), "42 ms");
  assert.equal(ms(4200), "4.20 s");
  assert.equal(ms(90_000), "1 m 30 s");
  assert.equal(duration(42), "42 s");
  assert.equal(duration(245), "4 m 05 s");
  assert.equal(pct(0.678), "67.8 %");
  assert.equal(pct(1), "100 %");
  assert.equal(rate(74.12), "74.1/s");
  assert.equal(rate(512.4), "512/s");
});

test("setClass and setData write only when the value changes", () => {
  const el = fakeElement();
  WL.setClass(el, "pill ok");
  WL.setClass(el, "pill ok");
  assert.equal(el.className, "pill ok");
  assert.equal(el.writes, 1);
  WL.setClass(el, "pill bad");
  assert.equal(el.writes, 2);

  WL.setData(el, "state", "running");
  WL.setData(el, "state", "running");
  assert.equal(el.dataset.state, "running");
  assert.equal(el.writes, 3);
  WL.setData(el, "count", 2);
  WL.setData(el, "count", "2");
  assert.equal(el.writes, 4, "a number and its text are the same attribute value");
});
