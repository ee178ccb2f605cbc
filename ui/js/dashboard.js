// Dashboard: listen address, alerts, headline tiles, charts, upstream hosts and
// per-route latency. Reads `status` (health + stats, every second), `activity`
// (cache counters for the hit rate) and `charts` (SVG drawn by the core).

"use strict";

(function () {
  const { $, h, setText, setHidden, setAttr, toggleClass, setUnavailable, fmt, store, isNum } = WL;

  const CHART_KEYS = ["latency", "ttft", "throughput", "hit_rate", "models"];

  const ALERT_NAMES = {
    latency: "High latency",
    error_rate: "Errors",
    hit_rate: "Low cache hit rate",
    breaker_open: "Circuit breaker open",
    upstream_down: "Upstream not answering",
    daemon_down: "Ollama down",
  };

  // ------------------------------------------------------------ rate --------

  // Requests per second: the growth of `stats.requests` over the last ~10 s of
  // status pushes, against the gateway's own uptime clock (not ours), so a late
  // or skipped push does not distort it.
  const RATE_SPAN_S = 10;
  let samples = [];

  function sample(status) {
    const stats = status && status.stats;
    if (!stats || !isNum(stats.uptime_s)) {
      samples = [];
      return;
    }
    const last = samples[samples.length - 1];
    if (last && stats.uptime_s < last.t) samples = []; // a restarted gateway
    samples.push({ t: stats.uptime_s, n: stats.requests });
    while (samples.length > 2 && stats.uptime_s - samples[1].t >= RATE_SPAN_S) samples.shift();
  }

  function requestsPerSecond() {
    if (samples.length < 2) return null;
    const first = samples[0];
    const last = samples[samples.length - 1];
    const span = last.t - first.t;
    return span > 0 ? Math.max(0, last.n - first.n) / span : null;
  }

  WL.on("status", sample);

  // ----------------------------------------------------------- charts -------

  let chartWindow = 300;
  const shownSvg = {}; // chart key -> the SVG string now in the DOM

  function chartBox(key) {
    return document.querySelector(`#charts [data-chart="${key}"]`);
  }

  function requestCharts() {
    toggleClass($("charts"), "is-loading", true);
    return WL.invoke("charts", { window: chartWindow, theme: WL.theme() })
      .then((charts) => WL.set("charts", charts))
      .catch((err) => {
        // Charts need a running gateway; the boxes say so rather than staying blank.
        showChartMessage(`Charts are unavailable: ${err.message}`);
        if (store.status && store.status.state === "running") WL.toastError(err, "Could not draw the charts");
      })
      .finally(() => toggleClass($("charts"), "is-loading", false));
  }

  function showChartMessage(text) {
    for (const key of CHART_KEYS) {
      if (shownSvg[key]) continue; // keep a drawn chart rather than blank it
      const box = chartBox(key);
      const p = box.querySelector(".chart-empty") || box.appendChild(h("p", { class: "chart-empty" }));
      setText(p, text);
    }
  }

  function renderCharts() {
    const charts = store.charts;
    // A push for another window (sent before the switch landed) is not shown.
    if (!charts || !charts.svgs || charts.window !== chartWindow) return;
    for (const key of CHART_KEYS) {
      const svg = charts.svgs[key];
      if (typeof svg !== "string" || svg === shownSvg[key]) continue;
      const box = chartBox(key);
      // The box keeps its size (aspect ratio from the SVG's viewBox), so swapping
      // one drawing for the next moves nothing around it.
      const viewBox = /viewBox="\s*[\d.]+\s+[\d.]+\s+([\d.]+)\s+([\d.]+)\s*"/.exec(svg);
      if (viewBox) box.style.aspectRatio = `${viewBox[1]} / ${viewBox[2]}`;
      box.innerHTML = svg.replace(/^\s*<\?xml[^>]*>\s*/, "");
      shownSvg[key] = svg;
    }
  }

  function selectWindow(seconds) {
    if (seconds === chartWindow) return;
    chartWindow = seconds;
    for (const b of $("chart-window").querySelectorAll("button")) {
      setAttr(b, "aria-pressed", String(Number(b.dataset.window) === seconds));
    }
    requestCharts();
  }

  // ------------------------------------------------------------ tiles -------

  /** The route with most traffic carries the headline percentiles: one
   *  route's distribution is meaningful, a blend of chat and tags is not. */
  function busiestRoute(stats, needTtft) {
    let best = null;
    for (const [name, route] of Object.entries(stats.routes || {})) {
      if (needTtft && !isNum(route.ttft_p50_ms)) continue;
      if (!best || route.count > best[1].count) best = [name, route];
    }
    return best;
  }

  function tile(id, value, sub, tone) {
    const el = $(id);
    setText(el, value);
    toggleClass(el, "bad", tone === "bad");
    toggleClass(el, "warn", tone === "warn");
    if (sub !== undefined) setText($(`${id}-sub`), sub);
  }

  function renderTiles(status) {
    const stats = status.stats;
    if (!stats) {
      for (const id of ["m-p50", "m-p95", "m-p99", "m-ttft", "m-error-rate", "m-inflight"]) tile(id, WL.DASH, "");
      tile("m-rps", WL.DASH);
      setText($("m-requests"), WL.DASH);
      setText($("m-requests-sub"), "requests");
      renderHitRate();
      return;
    }
    // The rate's caption is the total since start: #m-requests holds the bare
    // count (tests read it), #m-requests-sub the words around it.
    tile("m-rps", fmt.rate(requestsPerSecond()));
    setText($("m-requests"), fmt.count(stats.requests));
    setText($("m-requests-sub"), `request${stats.requests === 1 ? "" : "s"} in ${fmt.uptime(stats.uptime_s)}`);

    const busiest = busiestRoute(stats, false);
    const scope = busiest ? `${busiest[0]} route` : "no requests yet";
    tile("m-p50", busiest ? fmt.ms(busiest[1].p50_ms) : WL.DASH, scope);
    tile("m-p95", busiest ? fmt.ms(busiest[1].p95_ms) : WL.DASH, scope);
    tile("m-p99", busiest ? fmt.ms(busiest[1].p99_ms) : WL.DASH, busiest ? `max ${fmt.ms(busiest[1].max_ms)}` : scope);

    const streamed = busiestRoute(stats, true);
    tile(
      "m-ttft",
      streamed ? fmt.ms(streamed[1].ttft_p50_ms) : WL.DASH,
      streamed ? `p50 ${streamed[0]} · p95 ${fmt.ms(streamed[1].ttft_p95_ms)}` : "after a streamed reply",
    );

    const errorRate = stats.requests > 0 ? stats.errors / stats.requests : null;
    tile(
      "m-error-rate",
      fmt.pct(errorRate),
      `${fmt.count(stats.errors)} error${stats.errors === 1 ? "" : "s"} since start`,
      stats.errors > 0 ? "bad" : null,
    );
    tile(
      "m-inflight",
      fmt.count(stats.in_flight),
      isNum(stats.queue_wait_p99_ms) ? `queue wait p99 ${fmt.ms(stats.queue_wait_p99_ms)}` : "none queued",
    );
    renderHitRate();
  }

  function renderHitRate() {
    const cache = store.activity && store.activity.cache;
    if (!cache) return tile("m-hit-rate", WL.DASH, "");
    if (!cache.enabled) return tile("m-hit-rate", "off", "cache disabled in Settings");
    // As the core judges it: coalesced joins were answered without a generation too.
    const answered = cache.hits + cache.coalesced;
    const lookups = answered + cache.misses;
    tile(
      "m-hit-rate",
      lookups > 0 ? fmt.pct(answered / lookups) : WL.DASH,
      lookups > 0 ? `${fmt.count(answered)} of ${fmt.count(lookups)} lookups` : "no cacheable requests yet",
    );
  }

  // ------------------------------------------------------ gateway card ------

  function renderGateway(status) {
    const running = status.state === "running" || status.state === "paused";
    setText($("listen-url"), status.listen || WL.DASH);
    setUnavailable($("copy-listen"), status.listen ? null : "No address while the gateway is not running");
    const health = status.health;
    const parts = [];
    if (health && health.version) parts.push(`v${health.version}`);
    if (status.stats && running) parts.push(`up ${fmt.uptime(status.stats.uptime_s)}`);
    setText($("gateway-meta"), parts.join(" · "));

    const alerts = (health && health.alerts) || [];
    setHidden($("alerts-box"), alerts.length === 0);
    // The core's sentence already names the problem; its kind is the tooltip.
    WL.syncChildren(
      $("alerts"),
      alerts,
      (a) => a.alert,
      (a) => h("li", { dataset: { alert: a.alert } }),
      (li, a) => {
        setText(li, a.message ? a.message.charAt(0).toUpperCase() + a.message.slice(1) : a.alert);
        setAttr(li, "title", ALERT_NAMES[a.alert] || a.alert);
      },
    );
  }

  // --------------------------------------------------------- upstreams ------

  /** [state, detail, tone] of a host's circuit breaker. */
  function breakerText(breaker) {
    if (!breaker) return [WL.DASH, "", ""];
    if (breaker.state === "open") {
      const retry = isNum(breaker.retry_in_ms) ? `retry in ${fmt.duration(breaker.retry_in_ms / 1000)}` : "";
      return ["open", retry, "bad-text"];
    }
    if (breaker.state === "half_open") return ["half open", "probing", "warn-text"];
    const failures = breaker.consecutive_failures;
    return ["closed", failures ? `${failures} failure${failures === 1 ? "" : "s"} in a row` : "", ""];
  }

  function upstreamRow() {
    const cells = ["Host", "Reachable", "Breaker", "In flight", "Last probe", "Last error"].map((label, i) =>
      h("td", { dataset: { label }, class: i === 3 || i === 4 ? "num" : i === 5 ? "err" : null }),
    );
    cells[0].append(h("div", { class: "mono" }), h("div", { class: "sub" }));
    cells[1].append(h("span"));
    cells[2].append(h("div"), h("div", { class: "sub" }));
    return h("tr", {}, cells);
  }

  /** "4 parallel (adopted)", or per model while learning: "learned: llama3.2 4, qwen 1". */
  function parallelText(u) {
    const learned = Object.entries(u.parallel_learned || {});
    if (u.parallel_source === "learned" && learned.length) {
      return `parallel learned: ${learned.map(([m, n]) => `${m} ${n}`).join(", ")}`;
    }
    const how = u.parallel_source === "learned" ? "learning" : u.parallel_source;
    return `${u.parallel} parallel (${how || "stated"})`;
  }

  function updateUpstreamRow(tr, u) {
    const [host, reachable, breaker, inFlight, probe, error] = tr.children;
    setText(host.firstChild, u.url);
    const loaded = (u.loaded || []).length ? `loaded: ${u.loaded.join(", ")}` : "no model loaded";
    setText(host.lastChild, `weight ${u.weight} · ${parallelText(u)} · ${loaded}`);
    const dot = reachable.firstChild;
    setText(dot, u.reachable ? "yes" : "no");
    WL.setClass(dot, u.reachable ? "yes" : "no");
    const [state, detail, tone] = breakerText(u.breaker);
    setText(breaker.firstChild, state);
    WL.setClass(breaker.firstChild, tone);
    setText(breaker.lastChild, detail);
    setText(inFlight, fmt.count(u.in_flight));
    setText(probe, fmt.probe(u.last_latency_ms));
    setText(error, u.last_error || "");
  }

  function renderUpstreams(status) {
    const list = (status.health && status.health.upstreams) || [];
    WL.syncChildren($("upstreams"), list, (u) => u.url, upstreamRow, updateUpstreamRow);
    setHidden($("upstreams-empty"), list.length > 0);
    const up = list.filter((u) => u.reachable).length;
    setText($("upstreams-summary"), list.length ? `${up} of ${list.length} reachable` : "");
  }

  // ------------------------------------------------------------ routes ------

  function renderRoutes(status) {
    const routes = Object.entries((status.stats && status.stats.routes) || {}).sort((a, b) => b[1].count - a[1].count);
    WL.syncChildren(
      $("routes"),
      routes,
      ([name]) => name,
      () => h("tr", {}, h("td", { class: "mono" }), ...[1, 2, 3, 4, 5].map(() => h("td", { class: "num" }))),
      (tr, [name, r]) => {
        const c = tr.children;
        setText(c[0], name);
        setText(c[1], fmt.count(r.count));
        setText(c[2], fmt.ms(r.p50_ms));
        setText(c[3], fmt.ms(r.p95_ms));
        setText(c[4], fmt.ms(r.p99_ms));
        setText(c[5], fmt.ms(r.ttft_p50_ms));
      },
    );
    setHidden($("routes-empty"), routes.length > 0);
  }

  // ------------------------------------------------------------ wiring ------

  function render() {
    const status = store.status;
    if (status) {
      renderGateway(status);
      renderTiles(status);
      renderUpstreams(status);
      renderRoutes(status);
      if (status.state !== "running" && status.state !== "paused") {
        showChartMessage("Charts appear while the gateway runs.");
      }
    } else {
      renderHitRate();
    }
    renderCharts();
  }

  function init() {
    $("chart-window").addEventListener("click", (e) => {
      const button = e.target.closest("button[data-window]");
      if (button) selectWindow(Number(button.dataset.window));
    });
    $("copy-listen").addEventListener("click", (e) => {
      if (WL.isUnavailable(e.currentTarget)) return;
      WL.copyText($("listen-url").textContent)
        .then(() => WL.toast(`Copied ${$("listen-url").textContent}`))
        .catch((err) => WL.toastError(err, "Could not copy"));
    });
    // The charts follow the system theme; the shell then pushes that theme too.
    if (window.matchMedia) {
      const query = window.matchMedia("(prefers-color-scheme: dark)");
      const redraw = () => requestCharts();
      if (query.addEventListener) query.addEventListener("change", redraw);
      else if (query.addListener) query.addListener(redraw);
    }
  }

  WL.dashboard = { requestCharts };
  WL.view("dashboard", { topics: ["status", "activity", "charts"], init, render });
})();
