// Activity: the response cache (counters, purge), the most recent requests and
// the gateway's own log. Reads the `activity` push; the purge selector also
// lists `models`.

"use strict";

(function () {
  const { $, h, setText, setHidden, setUnavailable, fmt, store, isNum } = WL;

  // ------------------------------------------------------------- cache ------

  let purging = false;
  let purgeNames = ""; // signature of the models now in the purge selector

  function renderCache() {
    const cache = store.activity && store.activity.cache;
    const running = store.status && store.status.state === "running";
    if (!cache) {
      setText($("cache-state"), running ? "" : "available while the gateway runs");
      return;
    }
    setText(
      $("cache-state"),
      cache.enabled ? `on · ${fmt.count(cache.in_flight)} shared generation${cache.in_flight === 1 ? "" : "s"} in flight` : "off — turn it on in Settings",
    );
    setText($("c-entries"), fmt.count(cache.entries));
    setText($("c-stores"), `${fmt.count(cache.stores)} stored since start`);
    setText($("c-bytes"), fmt.bytes(cache.bytes));
    setText($("c-max"), cache.max_bytes ? `of ${fmt.bytes(cache.max_bytes)}` : "");
    setText($("c-hits"), fmt.count(cache.hits));
    setText($("c-coalesced"), `+ ${fmt.count(cache.coalesced)} joined in flight`);
    setText($("c-misses"), fmt.count(cache.misses));
    setText($("c-bypass"), `${fmt.count(cache.bypass)} not cacheable`);
    const share = cache.max_bytes ? Math.min(1, cache.bytes / cache.max_bytes) : 0;
    $("c-bar").style.width = `${(share * 100).toFixed(1)}%`;

    const redis = cache.redis;
    setHidden($("c-redis"), !redis);
    if (redis) {
      setText(
        $("c-redis"),
        `Redis ${redis.url} — ${redis.up ? "up" : "down"} · ${fmt.count(redis.hits)} hits · ` +
          `${fmt.count(redis.misses)} misses · ${fmt.count(redis.errors)} errors`,
      );
      WL.setClass($("c-redis"), redis.up ? "muted small" : "bad-text small");
    }
    setUnavailable($("purge-cache"), cache.enabled ? (purging ? "Purging…" : null) : "The cache is off");
  }

  function renderPurgeSelect() {
    const names = (store.models || []).map((m) => m.name);
    const signature = names.join("\n");
    if (signature === purgeNames) return;
    purgeNames = signature;
    const select = $("purge-model");
    const previous = select.value;
    select.replaceChildren(
      h("option", { value: "" }, "All models"),
      ...names.map((name) => h("option", { value: name }, `Only ${name}`)),
    );
    select.value = names.includes(previous) ? previous : "";
  }

  async function purge(e) {
    e.preventDefault();
    if (WL.isUnavailable($("purge-cache"))) return;
    const model = $("purge-model").value || null;
    purging = true;
    renderCache();
    try {
      const purged = await WL.invoke("purge_cache", { model });
      const what = purged.model ? `${purged.model}’s entries` : "the cache";
      const redis = isNum(purged.redis_removed) ? ` and ${fmt.count(purged.redis_removed)} from Redis` : "";
      WL.toast(`Purged ${what}: removed ${fmt.count(purged.removed)} entr${purged.removed === 1 ? "y" : "ies"}${redis}.`, {
        tone: "ok",
      });
      // Show the emptied cache now rather than at the next push.
      WL.invoke("activity").then((a) => WL.set("activity", a)).catch(() => {});
    } catch (err) {
      WL.toastError(err, "Could not purge the cache");
    } finally {
      purging = false;
      renderCache();
    }
  }

  // ---------------------------------------------------------- requests ------

  function requestRow() {
    return h(
      "tr",
      {},
      h("td", { class: "nowrap" }),
      h("td", { class: "mono" }),
      h("td", {}, h("span", { class: "mono" }), h("span", { class: "tag cold", hidden: true }, "cold start")),
      h("td", { class: "num" }),
      h("td", { class: "num" }),
      h("td", { class: "num" }),
      h("td", {}, h("span", { class: "cache-tag" })),
      h("td", { class: "mono" }),
    );
  }

  function updateRequestRow(tr, r) {
    const c = tr.children;
    setText(c[0], fmt.clock(r.at_ms));
    setText(c[1], r.route);
    setText(c[2].firstChild, r.model || WL.DASH);
    setHidden(c[2].lastChild, !r.cold_start);
    setText(c[3], String(r.status));
    WL.setClass(c[3], r.failed || r.status >= 500 ? "num bad-text" : r.status >= 400 ? "num warn-text" : "num");
    setText(c[4], fmt.ms(r.latency_ms));
    setText(c[5], fmt.ms(r.ttft_ms));
    const tag = c[6].firstChild;
    setText(tag, r.cache || WL.DASH);
    WL.setClass(tag, r.cache ? `cache-tag ${r.cache}` : "cache-tag");
    // host:port is what tells hosts apart; the whole URL is in the tooltip.
    setText(c[7], r.host ? r.host.replace(/^[a-z]+:\/\/([^@/]*@)?/i, "").replace(/\/$/, "") : WL.DASH);
    WL.setAttr(c[7], "title", r.host || null);
  }

  /** Keys that survive new requests arriving on top; identical requests within
   *  one millisecond get a running number so every key is distinct. */
  function keyed(requests) {
    const seen = new Map();
    return requests.map((r) => {
      const base = `${r.at_ms}|${r.route}|${r.model}|${r.status}|${r.latency_ms}`;
      const n = (seen.get(base) || 0) + 1;
      seen.set(base, n);
      return { key: `${base}#${n}`, r };
    });
  }

  function renderRequests() {
    const requests = (store.activity && store.activity.requests) || [];
    WL.syncChildren($("requests"), keyed(requests), (k) => k.key, requestRow, (tr, k) => updateRequestRow(tr, k.r));
    setHidden($("requests-empty"), requests.length > 0);
    setText($("requests-count"), requests.length ? `newest first · ${fmt.count(requests.length)} shown` : "");
  }

  // ------------------------------------------------------------- logs -------

  let logView;

  function logLine(line) {
    const level = (line.level || "").toUpperCase();
    return WL.logLine(
      line.at_ms,
      `level-${level.toLowerCase()}`,
      h("span", { class: "log-level" }, level),
      h("span", { class: "log-text" }, h("span", { class: "log-target" }, line.target), " ", line.text),
    );
  }

  // ------------------------------------------------------------ wiring ------

  function render() {
    renderCache();
    renderPurgeSelect();
    renderRequests();
    logView.update((store.activity && store.activity.logs) || []);
  }

  function init() {
    logView = WL.logTail($("gateway-log"), {
      key: (l) => `${l.at_ms}|${l.level}|${l.target}|${l.text}`,
      make: logLine,
      empty: "Nothing logged yet.",
      count: $("gateway-log-count"),
    });
    $("purge-form").addEventListener("submit", purge);
  }

  WL.view("activity", {
    topics: ["activity", "models"],
    init,
    render,
    shown() {
      logView.follow.after();
    },
  });
})();
