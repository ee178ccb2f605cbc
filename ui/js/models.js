// Models: every installed model with its warm switch and why it is kept warm
// (by choice, or by prediction with the reason), loaded state, memory, expiry
// countdown and cold starts; the memory budget of warm models; Load / Unload;
// and pulling a new model through the gateway's /api/pull.
//
// Reads the `models` push. Actions call warm/cool/load/unload, which answer with
// the updated model; until they do, the row shows the action under way.

"use strict";

(function () {
  const { $, h, setText, setHidden, setAttr, setUnavailable, fmt, store } = WL;

  // Model name -> "warm" | "cool" | "load" | "unload" while a command runs.
  const pending = new Map();
  let loadError = null; // the first `models` call's error, until a push succeeds

  const VERBS = { warm: "keep warm", cool: "stop keeping warm", load: "load", unload: "unload" };

  // Ollama writes "for ever" as an expiry centuries ahead.
  const FOREVER_YEAR = 2100;

  // ------------------------------------------------------------ cells -------

  function stateOf(model) {
    const action = pending.get(model.name);
    if (action === "warm" || action === "load" || model.loading) return ["loading…", "busy"];
    if (action === "cool" || action === "unload") return ["unloading…", "busy"];
    return model.loaded ? ["loaded", "ok"] : ["not loaded", "idle"];
  }

  /** When Ollama unloads it: a countdown, or "kept loaded" for "for ever". */
  function expiryText(model, now) {
    if (!model.loaded || !model.expires_at) return "";
    if (parseInt(model.expires_at.slice(0, 4), 10) > FOREVER_YEAR) return "kept loaded";
    const at = WL.parseStamp(model.expires_at);
    if (at == null) return "";
    const left = (at - now) / 1000;
    return left > 0 ? `unloads in ${fmt.duration(left)}` : "unloading now";
  }

  /** Why the model is kept loaded: by the switch, or by prediction and why. */
  function warmthText(model) {
    if (model.warmth === "choice") return "warm by your choice";
    if (model.warmth === "prediction") return `kept warm: ${model.warmth_reason || "expected soon"}`;
    return "";
  }

  /** "llama · 3.2B · Q4_K_M · 1.9 GiB · tools": what the model is, in one line. */
  function detailText(model) {
    if (model.hosts && model.hosts.length === 0) return "not installed on any host";
    const caps = (model.capabilities || []).filter((c) => c !== "completion");
    return [model.family, model.parameter_size, model.quantization_level, model.size ? fmt.bytes(model.size) : null, ...caps]
      .filter(Boolean)
      .join(" · ");
  }

  function createRow(model) {
    const cell = (label, cls, ...children) => h("td", { dataset: { label }, class: cls }, ...children);
    const toggle = h(
      "button",
      {
        type: "button",
        role: "switch",
        class: "switch",
        "aria-checked": "false",
        dataset: { testid: "warm-toggle", action: "toggle" },
      },
      h("span", { class: "switch-track", "aria-hidden": "true" }, h("span", { class: "switch-thumb" })),
    );
    return h(
      "tr",
      { dataset: { testid: "model-row", model: model.name } },
      cell(
        "Model",
        "model-name",
        h("strong", { class: "mono" }),
        h("div", { class: "sub model-detail" }),
        h("div", { class: "err", hidden: true }),
      ),
      cell("Keep warm", null, toggle, h("div", { class: "sub warmth", dataset: { testid: "model-warmth" } })),
      cell(
        "State",
        null,
        h("span", { class: "state", dataset: { testid: "model-loaded" } }),
        h("div", { class: "sub expiry" }),
      ),
      cell("Memory", "num", h("div"), h("div", { class: "sub" })),
      cell("Cold starts", "num"),
      cell(
        "Actions",
        "row-actions",
        h(
          "div",
          { class: "button-row" },
          h("button", { type: "button", class: "small-button", dataset: { action: "load" } }, "Load"),
          h("button", { type: "button", class: "small-button", dataset: { action: "unload" } }, "Unload"),
        ),
      ),
    );
  }

  function updateRow(tr, model) {
    const [nameCell, warmCell, stateCell, memoryCell, coldCell, actionsCell] = tr.children;
    const busy = pending.has(model.name);
    setAttr(tr, "data-model", model.name);
    setAttr(tr, "aria-busy", busy ? "true" : null);

    const [name, detail, err] = nameCell.children;
    setText(name, model.name);
    setText(detail, detailText(model));
    setText(err, model.error ? `Last warm load failed: ${model.error}` : "");
    setHidden(err, !model.error);

    const [toggle, why] = warmCell.children;
    setText(why, warmthText(model));
    const action = pending.get(model.name);
    const checked = action === "warm" ? true : action === "cool" ? false : model.warm;
    setAttr(toggle, "aria-checked", String(checked));
    setAttr(toggle, "aria-label", `Keep ${model.name} warm`);
    setUnavailable(toggle, busy ? "Working…" : null);

    const [state, expiry] = stateCell.children;
    const [stateText, tone] = stateOf(model);
    setText(state, stateText);
    WL.setClass(state, `state ${tone}`);
    setText(expiry, expiryText(model, Date.now()));
    const where = (model.hosts || []).filter((x) => x.loaded).map((x) => x.url);
    setAttr(stateCell, "title", where.length ? `Loaded on ${where.join(", ")}` : null);

    const [mem, vram] = memoryCell.children;
    setText(mem, model.loaded ? fmt.bytes(model.memory) : WL.DASH);
    setText(vram, model.loaded && model.memory_vram > 0 ? `${fmt.bytes(model.memory_vram)} VRAM` : "");

    setText(coldCell, fmt.count(model.cold_starts));

    const [load, unload] = actionsCell.firstChild.children;
    setUnavailable(
      load,
      busy ? "Working…" : model.loading ? "Already loading" : model.loaded ? "Already loaded" : null,
    );
    setUnavailable(unload, busy ? "Working…" : !model.loaded && !model.loading ? "Not loaded" : null);
  }

  // ----------------------------------------------------------- render -------

  function render() {
    const models = store.models || [];
    const tbody = $("models");
    WL.syncChildren(tbody, models, (m) => m.name, createRow, updateRow);

    const empty = $("models-empty");
    const running = store.status && store.status.state === "running";
    let message = "";
    if (!models.length) {
      if (loadError && !store.models) message = `Could not list the models: ${loadError.message}`;
      else if (!running && !store.models) message = "Models appear here while the gateway runs.";
      else message = "No models installed yet. Pull one below to get started.";
    }
    setText(empty, message);
    setHidden(empty, !message);
    setHidden(tbody.closest(".table-wrap"), models.length === 0);

    const warm = models.filter((m) => m.warm).length;
    const predicted = models.filter((m) => m.warmth === "prediction").length;
    const loaded = models.filter((m) => m.loaded);
    const memory = loaded.reduce((sum, m) => sum + (m.memory || 0), 0);
    const warmth = store.status && store.status.warmth;
    setText(
      $("models-summary"),
      models.length
        ? `${models.length} installed · ${warm} warm` +
            (predicted ? ` · ${predicted} kept by prediction` : "") +
            ` · ${loaded.length} loaded` +
            (memory ? ` · ${fmt.bytes(memory)} in memory` : "") +
            (warmth && warmth.budget ? ` · warm models ${fmt.bytes(warmth.used)} of a ${fmt.bytes(warmth.budget)} budget` : "")
        : "",
    );
    const note = warmth && warmth.chosen_over_budget ? warmth.message : "";
    setText($("warmth-note"), note || "");
    setHidden($("warmth-note"), !note);
    renderPullAvailability();
  }

  function tick(now) {
    if (!WL.isActive("models") || !store.models) return;
    const byName = new Map(store.models.map((m) => [m.name, m]));
    for (const tr of $("models").children) {
      const model = byName.get(tr.dataset.model);
      if (model) setText(tr.querySelector(".expiry"), expiryText(model, now));
    }
  }

  // ----------------------------------------------------------- actions ------

  /** Puts the model a command answered with into the list right away; the next
   *  push agrees with it. */
  function replaceModel(updated) {
    if (!updated || !updated.name || !store.models) return;
    const list = store.models.map((m) => (m.name === updated.name ? updated : m));
    WL.set("models", list);
  }

  async function run(action, name) {
    if (pending.has(name)) return;
    pending.set(name, action);
    render();
    try {
      replaceModel(await WL.invoke(action, { model: name }));
    } catch (err) {
      WL.toastError(err, `Could not ${VERBS[action]} ${name}`);
    } finally {
      pending.delete(name);
      render();
    }
  }

  function onTableClick(e) {
    const button = e.target.closest("button[data-action]");
    if (!button || WL.isUnavailable(button)) return;
    const row = button.closest("tr[data-model]");
    const model = store.models && store.models.find((m) => m.name === row.dataset.model);
    if (!model) return;
    let action = button.dataset.action;
    if (action === "toggle") action = model.warm ? "cool" : "warm";
    run(action, model.name);
  }

  // -------------------------------------------------------------- pull ------

  let pullAbort = null;

  function renderPullAvailability() {
    const reason = WL.gatewayBase() ? null : "Pulling needs the gateway running";
    if (!pullAbort) setUnavailable($("pull-start"), reason);
  }

  function setPulling(on) {
    setHidden($("pull-cancel"), !on);
    setUnavailable($("pull-start"), on ? "A pull is under way" : null);
    $("pull-name").readOnly = on;
    if (on) setHidden($("pull-progress-box"), false);
  }

  function pullStatus(text, tone) {
    const el = $("pull-status");
    setText(el, text);
    WL.setClass(el, `small ${tone || ""}`);
  }

  /** Sums every layer's progress: Ollama reports one layer (digest) at a time. */
  function progressOf(layers) {
    let total = 0;
    let done = 0;
    for (const { total: t, completed: c } of layers.values()) {
      total += t || 0;
      done += c || 0;
    }
    return { total, done };
  }

  async function pull(name) {
    const base = WL.gatewayBase();
    if (!base) return;
    const controller = new AbortController();
    pullAbort = controller;
    const layers = new Map();
    const bar = $("pull-progress");
    bar.removeAttribute("value"); // indeterminate until sizes arrive
    setPulling(true);
    pullStatus(`Pulling ${name}…`);
    try {
      const lines = WL.postNdjson(base, "/api/pull", { model: name, stream: true }, { signal: controller.signal });
      let succeeded = false;
      for await (const line of lines) {
        if (line.error) throw { code: "pull", message: line.error };
        if (line.digest && WL.isNum(line.total)) layers.set(line.digest, line);
        const { total, done } = progressOf(layers);
        if (total > 0) {
          bar.max = total;
          bar.value = done;
        }
        const amount = total > 0 ? ` — ${fmt.bytes(done)} of ${fmt.bytes(total)} (${fmt.pct(done / total)})` : "";
        const status = line.digest ? line.status.replace(line.digest, line.digest.slice(0, 19)) : line.status;
        pullStatus(`${status || "working"}${amount}`);
        if (line.status === "success") succeeded = true;
      }
      if (!succeeded) throw { code: "pull", message: "The pull ended before Ollama reported success." };
      bar.max = 1;
      bar.value = 1;
      pullStatus(`Pulled ${name}. It is listed above.`, "ok-text");
      $("pull-name").value = "";
      // One refresh now rather than waiting for the next push.
      WL.invoke("models").then((list) => WL.set("models", list)).catch(() => {});
    } catch (err) {
      const e = WL.normalizeError(err);
      if (e.code === "aborted") pullStatus(`Pull of ${name} cancelled.`);
      else pullStatus(`Pull of ${name} failed: ${e.message}`, "bad-text");
      bar.value = 0;
    } finally {
      pullAbort = null;
      setPulling(false);
      renderPullAvailability();
    }
  }

  function onPullSubmit(e) {
    e.preventDefault();
    if (WL.isUnavailable($("pull-start")) || pullAbort) return;
    const name = $("pull-name").value.trim();
    if (!name) {
      pullStatus("Type the name of a model to pull.", "bad-text");
      setHidden($("pull-progress-box"), false);
      $("pull-progress").value = 0;
      $("pull-name").focus();
      return;
    }
    pull(name);
  }

  // ------------------------------------------------------------ wiring ------

  function init() {
    $("models").addEventListener("click", onTableClick);
    $("pull-form").addEventListener("submit", onPullSubmit);
    $("pull-cancel").addEventListener("click", () => pullAbort && pullAbort.abort());
    WL.onTick(tick);
  }

  WL.models = {
    failedToLoad(err) {
      loadError = err;
    },
  };
  WL.view("models", { topics: ["models", "status"], init, render });
})();
