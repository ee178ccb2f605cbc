// Chat: talks to the gateway's /api/chat exactly like any Ollama client (fetch
// to the listen address, NDJSON stream), so what it shows per reply — time to
// first token measured here, tokens per second, the cache outcome, a cold load —
// is what a real client of Warmline experiences.

"use strict";

(function () {
  const { $, h, setText, setHidden, setAttr, toggleClass, store } = WL;

  const COLD_LOAD_NS = 100e6; // a load under 100 ms is scheduling noise, not a cold start
  const TEMPERATURE_HINT =
    "Empty uses the model’s default. At 0 a reply is deterministic, so Warmline can answer a repeat from its cache.";

  let conversation = []; // [{role, content}] sent with every request
  let streaming = null; // { controller } while a reply streams
  let modelNames = ""; // signature of the options now in the select
  let log; // follower of the transcript

  // ------------------------------------------------------------ models ------

  function installedModels() {
    return (store.models || []).filter((m) => (m.hosts || []).length > 0 || m.size > 0);
  }

  /** Rebuilds the options only when the set of names changed, so a push never
   *  closes an open dropdown or moves the selection. */
  function renderModelSelect() {
    const select = $("chat-model");
    const models = installedModels();
    const names = models.map((m) => m.name);
    const signature = names.join("\n");
    if (signature !== modelNames) {
      modelNames = signature;
      const previous = select.value;
      select.replaceChildren(
        ...(names.length
          ? names.map((name) => h("option", { value: name }, name))
          : [h("option", { value: "" }, "No models installed")]),
      );
      if (names.includes(previous)) select.value = previous;
      else if (names.length) {
        // A loaded model answers at once; prefer one.
        const loaded = models.find((m) => m.loaded);
        select.value = loaded ? loaded.name : names[0];
      }
    }
    WL.setDisabled(select, names.length === 0 || Boolean(streaming));
  }

  // ---------------------------------------------------------- controls ------

  function blocker() {
    const status = store.status;
    if (!status || status.state === "failed" || status.state === "stopped") return "Chat needs the gateway running.";
    if (status.state === "paused") return "The gateway is paused. Resume it (top right) to chat.";
    if (!installedModels().length) return "No models installed yet. Pull one on the Models tab, then chat with it here.";
    return null;
  }

  function renderControls() {
    const reason = blocker();
    const send = $("chat-send");
    WL.setDisabled(send, Boolean(reason) || Boolean(streaming));
    setAttr(send, "title", reason);
    WL.setDisabled($("chat-stop"), !streaming);
    WL.setDisabled($("chat-temperature"), Boolean(streaming));

    const empty = $("chat-empty");
    const model = $("chat-model").value;
    setText(
      empty,
      reason ||
        `Ask ${model} anything. Replies stream through Warmline at ${store.status.listen}, like any client’s, ` +
          "and each one shows its time to first token, speed and cache outcome.",
    );
    setHidden(empty, $("chat-log").children.length > 1);
  }

  function render() {
    renderModelSelect();
    renderControls();
  }

  // ---------------------------------------------------------- transcript ----

  function addUserMessage(text) {
    $("chat-log").append(h("div", { class: "msg user" }, h("div", { class: "msg-text", text })));
    setHidden($("chat-empty"), true);
    log.pin();
  }

  function addReply(model) {
    const text = h("div", { class: "msg-text" });
    const meta = h(
      "div",
      { class: "msg-meta" },
      h("span", { dataset: { testid: "reply-ttft" } }, "TTFT —"),
      h("span", { class: "reply-speed", hidden: true }),
      h("span", { class: "reply-cache", hidden: true }),
      h("span", { class: "reply-cold", hidden: true }),
      h("span", { class: "reply-note", hidden: true }),
    );
    const bubble = h(
      "div",
      { class: "msg assistant pending", dataset: { done: "false", model }, "aria-busy": "true" },
      h("div", { class: "msg-head" }, model),
      text,
      h("div", { class: "typing", "aria-hidden": "true" }, h("span"), h("span"), h("span")),
      meta,
    );
    $("chat-log").append(bubble);
    log.after();
    return bubble;
  }

  function metaPart(bubble, cls, text) {
    const el = bubble.querySelector(`.msg-meta .${cls}`);
    setText(el, text || "");
    setHidden(el, !text);
  }

  function showOutcome(bubble, { ttft, final, cache }) {
    setText(bubble.querySelector('[data-testid="reply-ttft"]'), ttft == null ? "TTFT —" : `TTFT ${Math.round(ttft)} ms`);
    if (final && final.eval_count > 0 && final.eval_duration > 0) {
      const perSecond = final.eval_count / (final.eval_duration / 1e9);
      metaPart(bubble, "reply-speed", `${perSecond.toFixed(1)} tokens/s`);
    }
    if (cache) metaPart(bubble, "reply-cache", `cache ${cache}`);
    if (final && final.load_duration > COLD_LOAD_NS) {
      metaPart(bubble, "reply-cold", `paid a cold load of ${(final.load_duration / 1e9).toFixed(1)} s`);
    }
  }

  function settle(bubble, outcome) {
    bubble.classList.remove("pending");
    setAttr(bubble, "aria-busy", null);
    bubble.dataset.done = "true";
    if (outcome) bubble.dataset.outcome = outcome;
  }

  // -------------------------------------------------------------- send ------

  function temperature() {
    const raw = $("chat-temperature").value.trim();
    if (raw === "") return { value: null };
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) return { error: "Temperature must be a number of 0 or more." };
    return { value };
  }

  function renderTemperatureHint(error) {
    const hint = $("chat-temperature-hint");
    const raw = $("chat-temperature").value.trim();
    let text = TEMPERATURE_HINT;
    if (error) text = error;
    else if (raw !== "" && Number(raw) === 0) {
      text = "Temperature 0: replies are deterministic and cacheable. Send the same conversation again to see a cache hit.";
    }
    setText(hint, text);
    toggleClass(hint, "bad-text", Boolean(error));
    setAttr($("chat-temperature"), "aria-invalid", error ? "true" : null);
  }

  async function send() {
    const input = $("chat-input");
    const text = input.value;
    const base = WL.gatewayBase();
    const model = $("chat-model").value;
    if (!text.trim() || streaming || blocker() || !base || !model) return;
    const temp = temperature();
    if (temp.error) {
      renderTemperatureHint(temp.error);
      $("chat-temperature").focus();
      return;
    }

    input.value = "";
    autosize();
    // This exchange belongs to the conversation it started in: "New chat" while
    // it streams swaps `conversation`, and the old reply must not leak into it.
    const thread = conversation;
    thread.push({ role: "user", content: text });
    addUserMessage(text);
    const bubble = addReply(model);
    const textEl = bubble.querySelector(".msg-text");
    const controller = new AbortController();
    streaming = { controller };
    render();

    const body = { model, messages: thread.slice(), stream: true };
    if (temp.value != null) body.options = { temperature: temp.value };
    const outcome = { ttft: null, final: null, cache: null };
    let content = "";
    const started = performance.now();
    try {
      const chunks = WL.postNdjson(base, "/api/chat", body, {
        signal: controller.signal,
        // The cache outcome is a header, sent with an error answer too.
        onHeaders: (headers) => (outcome.cache = headers.get("x-warmline-cache")),
      });
      for await (const chunk of chunks) {
        if (chunk.error) throw { code: "model", message: chunk.error };
        const piece = chunk.message && chunk.message.content;
        if (piece) {
          if (outcome.ttft == null) {
            outcome.ttft = performance.now() - started;
            showOutcome(bubble, outcome);
            metaPart(bubble, "reply-note", "");
          }
          content += piece;
          textEl.append(piece);
          log.after();
        } else if (chunk.message && chunk.message.thinking && outcome.ttft == null) {
          metaPart(bubble, "reply-note", "thinking…");
        }
        if (chunk.done) outcome.final = chunk;
      }
      if (!outcome.final) throw { code: "incomplete", message: "The reply ended before the model said it was done." };
      thread.push({ role: "assistant", content });
      showOutcome(bubble, outcome);
      settle(bubble, "done");
    } catch (err) {
      const e = WL.normalizeError(err);
      showOutcome(bubble, outcome);
      if (e.code === "aborted") {
        // Keep what arrived: the conversation goes on from what the user saw.
        if (content) thread.push({ role: "assistant", content });
        metaPart(bubble, "reply-note", "stopped");
        settle(bubble, "stopped");
      } else {
        if (content) thread.push({ role: "assistant", content });
        bubble.append(h("p", { class: "msg-error", role: "alert" }, e.message, e.hint ? ` ${e.hint}` : ""));
        settle(bubble, "error");
      }
    } finally {
      streaming = null;
      render();
      log.after();
      if (WL.isActive("chat")) input.focus();
    }
  }

  function newChat() {
    if (streaming) streaming.controller.abort();
    conversation = [];
    const chatLog = $("chat-log");
    for (const el of [...chatLog.children]) if (el.id !== "chat-empty") el.remove();
    render();
    $("chat-input").focus();
  }

  // ------------------------------------------------------------ input -------

  function autosize() {
    const input = $("chat-input");
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  }

  function onKeyDown(e) {
    if (e.key === "Enter" && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && !e.isComposing) {
      e.preventDefault();
      send();
    } else if (e.key === "Escape" && streaming) {
      streaming.controller.abort();
    }
  }

  function init() {
    log = WL.follower($("chat-log"));
    $("chat-form").addEventListener("submit", (e) => {
      e.preventDefault();
      send();
    });
    $("chat-input").addEventListener("keydown", onKeyDown);
    $("chat-input").addEventListener("input", autosize);
    $("chat-stop").addEventListener("click", () => streaming && streaming.controller.abort());
    $("chat-new").addEventListener("click", newChat);
    $("chat-model").addEventListener("change", renderControls);
    $("chat-temperature").addEventListener("input", () => renderTemperatureHint(null));
  }

  WL.view("chat", {
    topics: ["models", "status"],
    init,
    render,
    shown() {
      $("chat-input").focus();
    },
  });
})();
