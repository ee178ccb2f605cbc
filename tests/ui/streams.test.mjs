// Unit tests of WL.postNdjson (ui/js/core.js), the POST-and-read-NDJSON call
// behind chat (/api/chat) and model pulls (/api/pull): lines split anywhere
// across chunks, the errors a user is shown, and cancelling. Most answers are
// built in memory so each chunk boundary is exactly where the test puts it;
// the abort tests use a real local server and node's fetch, whose abort
// semantics are the webview's.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import { loadCore, plain } from "./harness.mjs";

let fetchImpl = fetch; // what the page's `fetch` does in the current test
const WL = loadCore({ fetch: (...args) => fetchImpl(...args), TextDecoder });

const encoder = new TextEncoder();

/** A fetch answering with `chunks` (strings or bytes), each one read on its
 *  own, and remembering what it was asked. */
function answer(chunks, init = {}) {
  const calls = [];
  fetchImpl = async (url, options) => {
    calls.push({ url, options });
    const body = new ReadableStream({
      start(controller) {
        for (const chunk of chunks) controller.enqueue(typeof chunk === "string" ? encoder.encode(chunk) : chunk);
        controller.close();
      },
    });
    return new Response(body, init);
  };
  return calls;
}

async function collect(lines) {
  const out = [];
  for await (const line of lines) out.push(line);
  return plain(out);
}

/** What the generator threw, as the UI reads it. */
async function failure(lines) {
  try {
    await collect(lines);
  } catch (err) {
    return plain(WL.normalizeError(err));
  }
  assert.fail("the stream did not fail");
}

test("posts the body as JSON to base + path, with the caller's signal", async () => {
  const calls = answer(['{"status":"success"}\n']);
  const signal = new AbortController().signal;
  const body = { model: "llama3.2", stream: true };
  assert.deepEqual(await collect(WL.postNdjson("http://127.0.0.1:11434", "/api/pull", body, { signal })), [
    { status: "success" },
  ]);
  assert.equal(calls.length, 1);
  const { url, options } = calls[0];
  assert.equal(url, "http://127.0.0.1:11434/api/pull");
  assert.equal(options.method, "POST");
  assert.equal(options.headers["content-type"], "application/json");
  assert.deepEqual(JSON.parse(options.body), body);
  assert.equal(options.signal, signal);
});

test("lines split across chunks come out whole; blank lines are skipped", async () => {
  answer(['{"n":', '1}\n{"n"', ":2}\n\n", '  {"n":3}  \n{"n":4}\n']);
  assert.deepEqual(await collect(WL.postNdjson("http://gw", "/api/chat", {})), [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }]);
});

test("a multi-byte character split across chunks is decoded whole", async () => {
  const bytes = encoder.encode('{"message":{"content":"héllo €5 🙂"}}\n');
  const euro = bytes.indexOf(0xe2); // first byte of the three of "€"
  const smile = bytes.indexOf(0xf0); // first byte of the four of "🙂"
  answer([bytes.slice(0, euro + 1), bytes.slice(euro + 1, smile + 2), bytes.slice(smile + 2)]);
  assert.deepEqual(await collect(WL.postNdjson("http://gw", "/api/chat", {})), [
    { message: { content: "héllo €5 🙂" } },
  ]);
});

test("a final line without a trailing newline is not lost", async () => {
  answer(['{"n":1}\n{"n":2,"done"', ":true}"]);
  assert.deepEqual(await collect(WL.postNdjson("http://gw", "/api/chat", {})), [{ n: 1 }, { n: 2, done: true }]);
});

test("a line that is not JSON fails the stream with what it was", async () => {
  answer(['{"n":1}\n', "<html>oops</html>\n"]);
  const e = await failure(WL.postNdjson("http://gw", "/api/chat", {}));
  assert.equal(e.code, "bad_stream");
  assert.equal(e.message, "The gateway sent a line that is not JSON: <html>oops</html>");
});

test("an HTTP error shows Ollama's message, and its headers are still read", async () => {
  answer(['{"error":"model \\"nope\\" not found, try pulling it first"}'], {
    status: 404,
    headers: { "x-warmline-cache": "bypass" },
  });
  let cache = null;
  const lines = WL.postNdjson("http://gw", "/api/chat", {}, { onHeaders: (h) => (cache = h.get("x-warmline-cache")) });
  const e = await failure(lines);
  assert.equal(e.code, "http_404");
  assert.equal(e.message, 'model "nope" not found, try pulling it first');
  assert.equal(cache, "bypass");
});

test("other HTTP error bodies: OpenAI's shape, plain text, nothing", async () => {
  answer(['{"error":{"message":"rate limited"}}'], { status: 429 });
  assert.equal((await failure(WL.postNdjson("http://gw", "/api/chat", {}))).message, "rate limited");
  answer(["upstream timed out"], { status: 504 });
  assert.equal((await failure(WL.postNdjson("http://gw", "/api/chat", {}))).message, "upstream timed out");
  answer([], { status: 502, statusText: "Bad Gateway" });
  const e = await failure(WL.postNdjson("http://gw", "/api/chat", {}));
  assert.deepEqual([e.code, e.message], ["http_502", "HTTP 502 Bad Gateway"]);
});

// ------------------------------------------------- against a real server ----

// Answers one line and holds the stream open, so only an abort can end it.
const server = http.createServer((req, res) => {
  if (req.url === "/api/silent") return; // never answers
  res.writeHead(200, { "content-type": "application/x-ndjson" });
  res.write('{"message":{"content":"Hel"}}\n');
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const base = `http://127.0.0.1:${server.address().port}`;
after(() => {
  server.close();
  server.closeAllConnections(); // fetch keeps idle ones alive for seconds
});

test("aborting mid-stream ends it as cancelled, after the lines that came", async () => {
  fetchImpl = fetch;
  const controller = new AbortController();
  const seen = [];
  try {
    for await (const line of WL.postNdjson(base, "/api/chat", {}, { signal: controller.signal })) {
      seen.push(plain(line));
      controller.abort();
    }
    assert.fail("the stream did not fail");
  } catch (err) {
    assert.deepEqual(plain(WL.normalizeError(err)), { code: "aborted", message: "Cancelled.", hint: null, field: null });
  }
  assert.deepEqual(seen, [{ message: { content: "Hel" } }]);
});

test("aborting before the gateway answers is a cancel, not 'unreachable'", async () => {
  fetchImpl = fetch;
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  const e = await failure(WL.postNdjson(base, "/api/silent", {}, { signal: controller.signal }));
  assert.equal(e.code, "aborted");
  assert.equal(e.message, "Cancelled.");
});

test("a gateway that is not there says where it tried", async () => {
  fetchImpl = fetch;
  const closed = http.createServer();
  await new Promise((resolve) => closed.listen(0, "127.0.0.1", resolve));
  const gone = `http://127.0.0.1:${closed.address().port}`;
  await new Promise((resolve) => closed.close(resolve));
  const e = await failure(WL.postNdjson(gone, "/api/chat", {}));
  assert.equal(e.code, "unreachable");
  assert.match(e.message, new RegExp(`^Could not reach the gateway at ${gone}: `));
  assert.equal(e.hint, "Check that the gateway is running (header) and not paused.");
});
