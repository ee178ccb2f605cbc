// Warmline desktop window: boot, navigation, header and app-wide banners.
//
// The Rust shell owns the data. At load the window calls each command once for
// the first paint, then only listens to the shell's pushes:
//   warmline://status   ~1 s   AppStatus        -> header, banners, dashboard, Ollama, chat
//   warmline://models   ~2 s   ModelView[]      -> models, chat model picker, purge picker
//   warmline://charts   ~2 s   {window, svgs}   -> dashboard charts (the window last asked for)
//   warmline://activity ~2 s   {requests, logs, daemon_logs, cache} -> activity, dashboard, Ollama log
// Other commands run only on user actions. Each push is a whole snapshot, so a
// missed one costs nothing but staleness. Views live in js/*.js (one per view,
// helpers in js/core.js) and render from `WL.store`.
//
// ---------------------------------------------------------------------------
// Stable hooks for end-to-end (WebDriver) tests
// ---------------------------------------------------------------------------
// <body>       data-state = AppStatus.state ("starting" before the first one),
//              data-view = the open view
// WL.pushes   number of warmline://status events received (a script property:
//              a body attribute would be one more DOM write a second)
// Header       #health-pill (text OK / Degraded / Down / Paused / Not running / Stopped;
//              data-status = ok|degraded|down|paused|failed|stopped|starting),
//              #pause-toggle (Pause/Resume), #quit, #demo-badge
// Navigation   [data-testid="nav-dashboard"|"nav-models"|"nav-chat"|"nav-daemon"|
//              "nav-activity"|"nav-settings"] (aria-current="page" when open);
//              views are #view-dashboard, #view-models, … (hidden when not open)
// Banners      #error-card (visible when state=failed) with #error-code, #error-message,
//              #error-hint; #paused-banner with #resume; #stopped-banner;
//              #ollama-missing with #ollama-hint and #start-demo; #demo-banner;
//              #notice-banner with #notice-text ([data-dismiss] buttons close them)
// Dashboard    #listen-url, #copy-listen, #alerts (li per alert);
//              tiles #m-rps #m-p50 #m-p95 #m-p99 #m-ttft #m-hit-rate #m-error-rate
//              #m-inflight #m-requests (plain number, e.g. "5");
//              #chart-window button[data-window="60|300|900|3600|86400"] (aria-pressed);
//              chart boxes [data-testid="chart-latency"|"chart-ttft"|"chart-throughput"|
//              "chart-hit-rate"|"chart-models"] (data-chart = the JSON key, e.g. hit_rate;
//              each holds one <svg> once drawn);
//              #upstreams (tbody; Reachable cell reads "yes"/"no"), #routes (tbody)
// Models       #models (tbody); tr[data-testid="model-row"][data-model="<name>"] with
//              [data-testid="warm-toggle"] (role=switch, aria-checked="true|false"),
//              [data-testid="model-loaded"] ("loaded" | "not loaded" | "loading…" |
//              "unloading…"), button[data-action="load"|"unload"];
//              buttons that cannot act now carry aria-disabled="true" + title (reason);
//              pull: #pull-name, #pull-start, #pull-cancel, #pull-progress, #pull-status
// Chat         #chat-model, #chat-temperature, #chat-input, #chat-send, #chat-stop,
//              #chat-new, #chat-log; bubbles .msg.user and .msg.assistant
//              (data-done="true" when finished; data-outcome="done"|"stopped"|"error");
//              in a reply: [data-testid="reply-ttft"] ("TTFT 23 ms"), .reply-speed
//              ("45.2 tokens/s"), .reply-cache ("cache hit"), .reply-cold, .msg-error
// Ollama       #daemon-state (data-state = DaemonState), #daemon-explain,
//              #daemon-start, #daemon-stop, #daemon-restart, #d-pid, #d-uptime,
//              #d-restarts, #d-cpu, #d-rss, #daemon-settings, #daemon-log
// Activity     #requests (tbody), #gateway-log, #c-entries, #c-bytes, #c-hits,
//              #c-misses, #purge-model (select, "" = all), #purge-cache
// Settings     #settings-form; inputs named by dotted path ([name="listen"],
//              [name="cache.max_size"], [name="rate_limit.burst"], …, upstream
//              entries [name="upstreams[0]"], …, [name="autostart"]); #upstream-add;
//              #settings-save, #settings-reset, #settings-status;
//              .field-error[data-field="<dotted path>"] (visible when set)
// Toasts       #toasts > .toast (.bad for errors, role=alert)
// ---------------------------------------------------------------------------

"use strict";

(function () {
  const { $, setText, setHidden, setUnavailable, store } = WL;

  const VIEWS = ["dashboard", "models", "chat", "daemon", "activity", "settings"];

  // ---------------------------------------------------------- navigation ----

  const scrollOf = {}; // view -> where <main> was scrolled when the user left it

  function navigate(name, focusId) {
    if (!VIEWS.includes(name)) name = "dashboard";
    const main = $("main");
    const previous = document.body.dataset.view;
    if (previous !== name) scrollOf[previous] = main.scrollTop;
    for (const tab of document.querySelectorAll(".tabs .tab")) {
      WL.setAttr(tab, "aria-current", tab.dataset.view === name ? "page" : null);
    }
    for (const view of VIEWS) setHidden($(`view-${view}`), view !== name);
    document.body.dataset.view = name;
    // "#/models", not "#models": a bare fragment would scroll to the element
    // with that id (the models table body).
    if (location.hash !== `#/${name}`) history.replaceState(null, "", `#/${name}`);
    WL.showView(name); // renders it first if data arrived while it was hidden
    // All views share one scroller: each comes back where the user left it.
    if (previous !== name) main.scrollTop = scrollOf[name] || 0;
    if (name === "settings" && !store.settings) loadSettings();
    if (focusId && $(focusId)) $(focusId).focus();
  }

  const viewInHash = () => location.hash.replace(/^#\/?/, "") || "dashboard";

  function onTabKey(e) {
    // Arrow keys move along the tabs; Tab still leaves them, as with any buttons.
    const tabs = [...document.querySelectorAll(".tabs .tab")];
    const i = tabs.indexOf(e.target);
    if (i < 0) return;
    const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[e.key];
    if (next == null) return;
    e.preventDefault();
    tabs[(next + tabs.length) % tabs.length].focus();
  }

  // ------------------------------------------------------------- header -----

  const HEALTH = {
    ok: ["OK", "ok"],
    degraded: ["Degraded", "warn"],
    down: ["Down", "bad"],
  };

  function pillFor(status) {
    switch (status.state) {
      case "running": {
        const health = status.health && status.health.status;
        const [label, tone] = HEALTH[health] || ["Running", "ok"];
        return [label, tone, health || "ok"];
      }
      case "paused":
        return ["Paused", "warn", "paused"];
      case "failed":
        return ["Not running", "bad", "failed"];
      case "stopped":
        return ["Stopped", "", "stopped"];
      default:
        return ["Starting…", "", "starting"];
    }
  }

  let pauseBusy = false;

  function renderHeader(status) {
    WL.setData(document.body, "state", status.state);
    const pill = $("health-pill");
    const [label, tone, key] = pillFor(status);
    setText(pill, label);
    WL.setClass(pill, `pill ${tone}`);
    WL.setData(pill, "status", key);

    const toggle = $("pause-toggle");
    const paused = status.state === "paused";
    setText(toggle, paused ? "Resume" : "Pause");
    WL.setData(toggle, "title", paused ? "Accept requests again" : "Stop accepting requests until resumed");
    let reason = null;
    if (pauseBusy) reason = "Working…";
    else if (status.state !== "running" && !paused) reason = "The gateway is not running";
    setUnavailable(toggle, reason);

    setHidden($("demo-badge"), !status.demo);
    const version = status.health && status.health.version;
    setText($("footer-version"), version ? `Warmline v${version}` : "");
  }

  // ------------------------------------------------------------ banners -----

  const dismissed = { demo: false, notice: null };

  function renderBanners(status) {
    const failed = status.state === "failed";
    setHidden($("error-card"), !failed);
    if (failed) {
      const error = status.error || { code: "unknown", message: "The gateway is not running." };
      setText($("error-code"), error.code);
      setText($("error-message"), error.message);
      setText($("error-hint"), error.hint || "");
      setHidden($("error-hint"), !error.hint);
    }

    setHidden($("paused-banner"), status.state !== "paused");
    setText($("paused-listen"), status.listen || "its address");
    setUnavailable($("resume"), pauseBusy ? "Working…" : null);
    setHidden($("stopped-banner"), status.state !== "stopped");

    const missing = status.ollama && status.ollama.found === false && !status.demo;
    setHidden($("ollama-missing"), !missing);
    if (missing) {
      const hint = status.ollama.hint;
      setText($("ollama-hint"), hint || "");
      setHidden($("ollama-hint"), !hint);
    }

    setHidden($("demo-banner"), !status.demo || dismissed.demo);
    const notice = status.notice;
    setHidden($("notice-banner"), !notice || notice === dismissed.notice);
    if (notice) setText($("notice-text"), notice);

    // No banner showing: the empty box must not add a gap above the view.
    setHidden($("banners"), [...$("banners").children].every((b) => b.hidden));
  }

  // ------------------------------------------------------------ actions -----

  async function pauseOrResume() {
    const status = store.status;
    if (!status || pauseBusy) return;
    const action = status.state === "paused" ? "resume" : "pause";
    pauseBusy = true;
    renderHeader(status);
    renderBanners(status);
    try {
      await WL.invoke("tray_action", { action });
    } catch (err) {
      WL.toastError(err, `Could not ${action} the gateway`);
    } finally {
      pauseBusy = false;
      if (store.status) {
        renderHeader(store.status);
        renderBanners(store.status);
      }
    }
  }

  async function startDemo(button) {
    setUnavailable(button, "Starting demo mode…");
    setText(button, "Starting…");
    try {
      // The new status goes through onStatus, which refreshes what needs it.
      WL.set("status", await WL.invoke("start_demo"));
      WL.toast("Demo mode is on: a built-in Ollama simulator now answers.", { tone: "ok" });
    } catch (err) {
      WL.toastError(err, "Could not start demo mode");
    } finally {
      setUnavailable(button, null);
      setText(button, "Start demo mode");
    }
  }

  function quit() {
    WL.invoke("tray_action", { action: "quit" }).catch((err) => WL.toastError(err, "Could not quit"));
  }

  // ---------------------------------------------------------- first paint ---

  // Which pushes have arrived: a first-paint answer older than a push is dropped.
  // (Charts are always taken: their answer is for the window just selected.)
  const pushed = { status: false, models: false, activity: false };

  function loadSettings() {
    return WL.invoke("settings")
      .then((snapshot) => WL.set("settings", snapshot))
      .catch((err) => WL.settings.failedToLoad(err));
  }

  /** When the gateway comes up after the window did (demo started, resumed),
   *  the one-off reads that failed at load are worth one more try. */
  function refreshAfterStart() {
    WL.dashboard.requestCharts();
    if (!store.settings) loadSettings();
  }

  let lastState = null;

  function onStatus(status) {
    renderHeader(status);
    renderBanners(status);
    if (lastState && lastState !== "running" && status.state === "running") refreshAfterStart();
    lastState = status.state;
  }

  function firstPaint() {
    const running = () => store.status && store.status.state === "running";
    const report = (title) => (err) => {
      // Expected while the gateway is down (each view says so); news otherwise.
      if (running()) WL.toastError(err, title);
    };
    WL.invoke("app_status")
      .then((status) => {
        if (!pushed.status) WL.set("status", status);
      })
      .catch((err) => {
        WL.toastError(err, "Could not read Warmline’s status");
      })
      .finally(() => {
        WL.invoke("models")
          .then((models) => !pushed.models && WL.set("models", models))
          .catch((err) => {
            WL.models.failedToLoad(err);
            WL.set("models", store.models); // re-render with the reason
            report("Could not list the models")(err);
          });
        WL.invoke("activity")
          .then((activity) => !pushed.activity && WL.set("activity", activity))
          .catch(report("Could not read recent activity"));
        WL.dashboard.requestCharts();
        loadSettings();
      });
  }

  async function listenAll() {
    await Promise.all([
      WL.listen("warmline://status", (status) => {
        pushed.status = true;
        WL.pushes += 1;
        WL.set("status", status);
      }),
      WL.listen("warmline://models", (models) => {
        pushed.models = true;
        WL.set("models", models);
      }),
      WL.listen("warmline://charts", (charts) => WL.set("charts", charts)),
      WL.listen("warmline://activity", (activity) => {
        pushed.activity = true;
        WL.set("activity", activity);
      }),
    ]);
  }

  // ----------------------------------------------------------------- boot ---

  function wire() {
    for (const name of VIEWS) {
      const v = WL.views[name];
      if (v && v.init) v.init();
    }
    const tabs = document.querySelector(".tabs");
    tabs.addEventListener("click", (e) => {
      const tab = e.target.closest(".tab");
      if (tab) navigate(tab.dataset.view);
    });
    tabs.addEventListener("keydown", onTabKey);
    window.addEventListener("hashchange", () => {
      // Only view fragments route; others (the skip link's #main) are left alone.
      if (VIEWS.includes(viewInHash())) navigate(viewInHash());
    });

    $("pause-toggle").addEventListener("click", (e) => !WL.isUnavailable(e.currentTarget) && pauseOrResume());
    $("resume").addEventListener("click", (e) => !WL.isUnavailable(e.currentTarget) && pauseOrResume());
    $("quit").addEventListener("click", quit);
    $("start-demo").addEventListener("click", (e) => !WL.isUnavailable(e.currentTarget) && startDemo(e.currentTarget));
    $("banners").addEventListener("click", (e) => {
      const button = e.target.closest("[data-dismiss]");
      if (!button) return;
      if (button.dataset.dismiss === "demo") dismissed.demo = true;
      else dismissed.notice = store.status && store.status.notice;
      if (store.status) renderBanners(store.status);
    });
    WL.on("status", onStatus);
  }

  async function boot() {
    wire();
    navigate(viewInHash());
    if (!window.__TAURI__) {
      WL.set("status", {
        state: "failed",
        listen: null,
        error: {
          code: "no_shell",
          message: "This window is Warmline’s desktop interface and needs the Warmline app around it.",
          hint: "Start Warmline itself; its window opens from the tray.",
        },
      });
      return;
    }
    // Listen first, so nothing pushed between the first reads and the
    // subscription is lost.
    try {
      await listenAll();
    } catch (err) {
      WL.toastError(err, "Live updates are unavailable");
    }
    firstPaint();
  }

  WL.navigate = navigate;
  boot();
})();
