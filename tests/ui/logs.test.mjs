// Unit tests of the log renderer shared by the Activity (gateway log) and
// Ollama (daemon output) views: WL.logLine builds a line, WL.logTail appends
// only what is new, so a push a second costs a few nodes and never redraws
// text the user is selecting. Runs on the small fake DOM in harness.mjs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { loadCore, fakeDocument, FakeNode } from "./harness.mjs";

const WL = loadCore({ document: fakeDocument, Node: FakeNode });

const line = (n) => ({ at_ms: 1_700_000_000_000 + n * 1000, text: `line ${n}` });
const lines = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => line(from + i));

/** The same element objects, not just equal-looking ones. */
function assertSameNodes(actual, expected, message) {
  assert.equal(actual.length, expected.length, message);
  actual.forEach((el, i) => assert.equal(el, expected[i], message));
}

function tail() {
  const box = fakeDocument.createElement("div");
  const count = fakeDocument.createElement("span");
  const view = WL.logTail(box, {
    key: (l) => `${l.at_ms}|${l.text}`,
    make: (l) => WL.logLine(l.at_ms, null, WL.h("span", { class: "log-text" }, l.text)),
    empty: "Nothing logged yet.",
    count,
  });
  return { box, count, view, texts: () => box.children.map((el) => el.children[1].textContent) };
}

test("logLine: the time, then the parts, in a log-line with its extra class", () => {
  const el = WL.logLine(line(1).at_ms, "level-warn", WL.h("span", { class: "log-level" }, "WARN"), "text");
  assert.equal(el.className, "log-line level-warn");
  assert.deepEqual(el.childNodes.map((n) => n.tagName || "#text"), ["TIME", "SPAN", "#text"]);
  assert.equal(el.children[0].textContent, WL.fmt.clock(line(1).at_ms));
  assert.equal(el.textContent.endsWith("WARNtext"), true);
  assert.equal(WL.logLine(0, null).className, "log-line", "no extra class, no trailing space");
});

test("logTail shows the empty text and no count when there are no lines", () => {
  const { box, count, view } = tail();
  view.update([]);
  assert.equal(box.children.length, 1);
  assert.equal(box.firstElementChild.className, "empty");
  assert.equal(box.textContent, "Nothing logged yet.");
  assert.equal(count.textContent, "");
});

test("logTail appends only the new lines and keeps the elements already shown", () => {
  const { box, count, view, texts } = tail();
  view.update(lines(1, 3));
  assert.deepEqual(texts(), ["line 1", "line 2", "line 3"]);
  assert.equal(count.textContent, "last 3 lines");
  const shown = box.children;

  view.update(lines(1, 3)); // the same push again: nothing to do
  assertSameNodes(box.children, shown);

  view.update(lines(1, 5));
  assert.deepEqual(texts(), ["line 1", "line 2", "line 3", "line 4", "line 5"]);
  assertSameNodes(box.children.slice(0, 3), shown, "the lines already shown are the same nodes");
  assert.equal(count.textContent, "last 5 lines");
});

test("logTail drops the oldest lines as the tail slides, and starts over past it", () => {
  const { box, view, texts } = tail();
  view.update(lines(1, 4));
  const kept = box.children.slice(2);
  view.update(lines(3, 6)); // the tail holds four: 1 and 2 fell off
  assert.deepEqual(texts(), ["line 3", "line 4", "line 5", "line 6"]);
  assertSameNodes(box.children.slice(0, 2), kept);

  view.update(lines(10, 11)); // nothing shown is in the tail any more
  assert.deepEqual(texts(), ["line 10", "line 11"]);
});

test("logTail goes from empty to lines and back", () => {
  const { box, count, view, texts } = tail();
  view.update([]);
  view.update(lines(1, 1));
  assert.deepEqual(texts(), ["line 1"]);
  assert.notEqual(count.textContent, "");
  view.update([]);
  assert.equal(box.textContent, "Nothing logged yet.");
  assert.equal(count.textContent, "");
});
