// Settings: a form over the settings the shell reports (RawConfig, secrets
// masked). Save sends only the fields the user changed, as a JSON merge patch,
// to update_settings (applied live and persisted by the shell); start at login
// goes to set_autostart. A refused value is shown next to its field and the
// user's input is kept.

"use strict";

(function () {
  const { $, h, setText, setHidden, setAttr, setUnavailable, store } = WL;

  // name (dotted path in RawConfig) -> how the form holds it.
  //   text: a string; optional: a string, empty = unset (null in the patch);
  //   size: bytes as a number or a string such as "256MiB"; int: whole number; bool.
  const FIELDS = [
    ["listen", "text"],
    ["cache.enabled", "bool"],
    ["cache.max_size", "size"],
    ["cache.redis", "optional"],
    ["cache.ttl_generation", "text"],
    ["cache.ttl_embedding", "text"],
    ["rate_limit.enabled", "bool"],
    ["rate_limit.per_second", "int"],
    ["rate_limit.burst", "int"],
    ["daemon.supervise", "bool"],
    ["daemon.keep_alive", "text"],
    ["daemon.num_parallel", "int"],
    ["daemon.max_loaded_models", "int"],
  ];

  // A URL whose password the shell masked, e.g. http://user:***@host.
  const MASKED = /:\*\*\*@/;
  const MASKED_MESSAGE =
    "This address shows its password as ***. Type the real password to save this change, or change it in the config file.";

  let filledFrom = null; // the store.settings object the form was last filled from
  let saving = false;
  let loadError = null; // why the first `settings` call failed, if it did

  const form = () => $("settings-form");
  const input = (name) => form().elements.namedItem(name);
  const get = (obj, path) => path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);

  function put(patch, path, value) {
    const keys = path.split(".");
    let o = patch;
    keys.slice(0, -1).forEach((k) => (o = o[k] = o[k] || {}));
    o[keys[keys.length - 1]] = value;
  }

  // --------------------------------------------------------- upstreams ------

  const upstreamUrl = (entry) => (typeof entry === "string" ? entry : entry && entry.url) || "";

  function upstreamItem(url) {
    const field = h("input", { type: "text", autocomplete: "off", spellcheck: "false" });
    field.value = url;
    const remove = h("button", { type: "button", class: "small-button", dataset: { remove: "" } }, "Remove");
    return h("li", {}, h("label", { class: "visually-hidden" }), field, remove, h("p", { class: "field-error", hidden: true }));
  }

  /** Names, labels and error slots follow each entry's position. */
  function renumberUpstreams() {
    const items = [...$("upstream-list").children];
    items.forEach((li, i) => {
      const [label, field, remove, error] = li.children;
      const name = `upstreams[${i}]`;
      field.name = name;
      field.id = `f-upstream-${i}`;
      label.htmlFor = field.id;
      setText(label, `Upstream ${i + 1}`);
      error.dataset.field = name;
      error.id = `f-upstream-${i}-err`;
      setAttr(field, "aria-describedby", error.id);
      setUnavailable(remove, items.length === 1 ? "Warmline needs at least one upstream" : null);
      setAttr(remove, "aria-label", `Remove upstream ${i + 1}`);
    });
  }

  function fillUpstreams(list) {
    $("upstream-list").replaceChildren(...(list.length ? list : [""]).map((e) => upstreamItem(upstreamUrl(e))));
    renumberUpstreams();
  }

  function formUpstreams() {
    return [...$("upstream-list").querySelectorAll("input")].map((i) => i.value.trim()).filter(Boolean);
  }

  // ------------------------------------------------------------ fill --------

  function asText(value) {
    return value == null ? "" : String(value);
  }

  function fill(snapshot) {
    const raw = snapshot.settings || {};
    for (const [name, kind] of FIELDS) {
      const el = input(name);
      if (kind === "bool") el.checked = Boolean(get(raw, name));
      else el.value = asText(get(raw, name));
    }
    fillUpstreams(raw.upstreams || []);
    input("autostart").checked = Boolean(snapshot.autostart);
    filledFrom = snapshot;
    clearErrors();
  }

  // ------------------------------------------------------------ patch -------

  /** The merge patch of what differs from the loaded settings, plus local
   *  errors for values that cannot even be sent (a number field with text). */
  function diff() {
    const raw = filledFrom.settings || {};
    const patch = {};
    const errors = [];
    for (const [name, kind] of FIELDS) {
      const el = input(name);
      const before = get(raw, name);
      if (kind === "bool") {
        if (el.checked !== Boolean(before)) put(patch, name, el.checked);
        continue;
      }
      const text = el.value.trim();
      if (text === asText(before).trim()) continue;
      if (kind === "int") {
        if (!/^\d+$/.test(text)) errors.push([name, `${name}: "${text}" is not a whole number`]);
        else put(patch, name, Number(text));
      } else if (kind === "size") put(patch, name, /^\d+$/.test(text) ? Number(text) : text);
      else if (kind === "optional") put(patch, name, text === "" ? null : text);
      else put(patch, name, text);
    }
    // Arrays are replaced whole by a merge patch: send the full list, keeping an
    // unchanged host's weight and parallelism.
    const before = (raw.upstreams || []).map(upstreamUrl);
    const now = formUpstreams();
    if (now.join("\n") !== before.join("\n")) {
      patch.upstreams = now.map((url) => (raw.upstreams || []).find((e) => upstreamUrl(e) === url) || url);
      // The settings come with passwords masked; sent back, "***" would become
      // the password. The whole list is sent, so any masked entry must be retyped.
      now.forEach((url, i) => {
        if (MASKED.test(url)) errors.push([`upstreams[${i}]`, MASKED_MESSAGE]);
      });
    }
    if (patch.cache && typeof patch.cache.redis === "string" && MASKED.test(patch.cache.redis)) {
      errors.push(["cache.redis", MASKED_MESSAGE]);
    }
    const autostart = input("autostart").checked;
    return { patch, errors, autostart: autostart !== Boolean(filledFrom.autostart) ? autostart : null };
  }

  // ----------------------------------------------------------- errors -------

  function errorSlot(field) {
    // "upstreams[1].weight" -> "upstreams[1]" -> "upstreams": the nearest slot shown.
    let name = field;
    while (name) {
      const slot = form().querySelector(`.field-error[data-field="${CSS.escape(name)}"]`);
      if (slot) return { slot, name };
      const cut = Math.max(name.lastIndexOf("."), name.lastIndexOf("["));
      name = cut > 0 ? name.slice(0, cut) : "";
    }
    return null;
  }

  /** Shows `message` in the error slot nearest to `field` and marks its input;
   *  false when the form has no place for it (the status line says it then). */
  function showFieldError(field, message, focus = true) {
    const found = field && errorSlot(field);
    if (!found) return false;
    setText(found.slot, message);
    setHidden(found.slot, false);
    const el = form().querySelector(`[name="${CSS.escape(found.name)}"]`);
    if (el) {
      setAttr(el, "aria-invalid", "true");
      if (focus) el.focus();
    }
    // Focus brings the input into view; the message under it must be seen too.
    if (focus) found.slot.scrollIntoView({ block: "nearest" });
    return true;
  }

  function clearError(name) {
    const slot = form().querySelector(`.field-error[data-field="${CSS.escape(name)}"]`);
    if (slot) setHidden(slot, true);
    const el = form().querySelector(`[name="${CSS.escape(name)}"]`);
    if (el) setAttr(el, "aria-invalid", null);
  }

  function clearErrors() {
    for (const slot of form().querySelectorAll(".field-error")) setHidden(slot, true);
    for (const el of form().querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  }

  // ----------------------------------------------------------- status -------

  function status(text, tone, notes) {
    const box = $("settings-status");
    WL.setClass(box, `settings-status ${tone || ""}`);
    const parts = [h("p", {}, text)];
    if (notes && notes.length) parts.push(h("ul", { class: "notes" }, notes.map((n) => h("li", {}, n))));
    box.replaceChildren(...parts);
  }

  function markDirty() {
    if (!filledFrom || saving) return;
    const { patch, autostart } = diff();
    const dirty = Object.keys(patch).length > 0 || autostart != null;
    const box = $("settings-status");
    if (dirty && !box.classList.contains("bad")) status("Unsaved changes.", "muted");
    else if (!dirty && box.classList.contains("muted")) status("");
  }

  // ------------------------------------------------------------- save -------

  async function save(e) {
    e.preventDefault();
    if (saving || WL.isUnavailable($("settings-save"))) return;
    clearErrors();
    const { patch, errors, autostart } = diff();
    if (errors.length) {
      errors.forEach(([name, message], i) => showFieldError(name, message, i === 0));
      status("Not saved: fix the highlighted field.", "bad");
      return;
    }
    const patchEmpty = Object.keys(patch).length === 0;
    if (patchEmpty && autostart == null) {
      status("No changes to save.", "muted");
      return;
    }

    saving = true;
    setAttr($("settings-save"), "aria-busy", "true");
    status("Saving…", "muted");
    const changed = [];
    let notes = [];
    try {
      if (!patchEmpty) {
        const applied = await WL.invoke("update_settings", { patch });
        changed.push(...(applied.changed || []));
        notes = applied.notes || [];
      }
      if (autostart != null) {
        try {
          await WL.invoke("set_autostart", { enabled: autostart });
          changed.push("autostart");
        } catch (err) {
          err.field = err.field || "autostart";
          throw err;
        }
      }
      status(changed.length ? `Saved — changed: ${changed.join(", ")}` : "Saved — the settings in force already had these values.", "ok", notes);
      await reload();
    } catch (err) {
      const shown = showFieldError(err.field, err.message);
      const saved = changed.length ? ` (saved before it: ${changed.join(", ")})` : "";
      status(shown ? `Not saved: fix the marked field${saved}.` : `Not saved: ${err.message}${saved}`, "bad", err.hint ? [err.hint] : null);
      if (changed.length) await reload(true);
    } finally {
      saving = false;
      setAttr($("settings-save"), "aria-busy", null);
    }
  }

  /** Fetches the settings in force again (values come back normalised, e.g.
   *  "512MiB"). `keepInput` refreshes the baseline but leaves the form as typed. */
  async function reload(keepInput) {
    try {
      const snapshot = await WL.invoke("settings");
      // Marking it as the one filled from keeps render() from overwriting input.
      if (keepInput) filledFrom = snapshot;
      WL.set("settings", snapshot);
    } catch (err) {
      WL.toastError(err, "Saved, but the settings could not be read back");
    }
  }

  function reset() {
    if (!filledFrom) return;
    fill(filledFrom);
    status("Reverted to the saved settings.", "muted");
  }

  // ------------------------------------------------------------ render ------

  function render() {
    const snapshot = store.settings;
    const loaded = Boolean(snapshot && snapshot.settings);
    for (const fieldset of form().querySelectorAll("fieldset")) fieldset.disabled = !loaded;
    setUnavailable($("settings-save"), loaded ? null : "The settings have not been loaded");
    setUnavailable($("settings-reset"), loaded ? null : "The settings have not been loaded");
    if (loaded && snapshot !== filledFrom) fill(snapshot);
    setHidden($("settings-load-error"), loaded || !loadError);
  }

  function init() {
    form().addEventListener("submit", save);
    $("settings-reset").addEventListener("click", (e) => {
      if (!WL.isUnavailable(e.currentTarget)) reset();
    });
    $("upstream-add").addEventListener("click", () => {
      const item = upstreamItem("");
      $("upstream-list").append(item);
      renumberUpstreams();
      item.querySelector("input").focus();
      markDirty();
    });
    $("upstream-list").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-remove]");
      if (!button || WL.isUnavailable(button)) return;
      const li = button.closest("li");
      const next = li.nextElementSibling || li.previousElementSibling;
      li.remove();
      renumberUpstreams();
      if (next) next.querySelector("input").focus();
      markDirty();
    });
    form().addEventListener("input", (e) => {
      if (e.target.name) clearError(e.target.name);
      markDirty();
    });
    form().addEventListener("change", markDirty);
  }

  WL.settings = {
    failedToLoad(err) {
      loadError = err;
      setText($("settings-load-error"), `The settings could not be loaded: ${err.message}`);
      render();
    },
  };
  WL.view("settings", { topics: ["settings"], init, render });
})();
