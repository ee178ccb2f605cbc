// Ollama: the supervised daemon's state with a plain explanation, its process,
// resources, the settings asked for against those it reports, Start / Stop /
// Restart, and its output. Reads `status.daemon`, `settings` and
// `activity.daemon_logs`.

"use strict";

(function () {
  const { $, h, setText, setHidden, setUnavailable, fmt, store, isNum } = WL;

  // state -> [label, pill tone, explanation]
  const STATES = {
    disabled: [
      "Not supervised",
      "",
      "Warmline does not start or watch Ollama here. Turn on “Supervise Ollama” in Settings to have it started, restarted after a crash and tuned.",
    ],
    starting: ["Starting", "warn", "Warmline started Ollama and is waiting for it to answer."],
    running: [
      "Running",
      "ok",
      "Warmline started this Ollama, restarts it if it exits, and stops it when Warmline quits.",
    ],
    external: [
      "Running (external)",
      "ok",
      "This Ollama was started outside Warmline, for example by the Ollama app or a system service. Warmline watches it but never stops or restarts it.",
    ],
    restarting: ["Restarting", "warn", "Ollama exited unexpectedly. Warmline starts it again shortly."],
    stopped: ["Stopped", "", "Ollama was stopped on request. Start it to serve models again."],
    crash_loop: [
      "Gave up: crash loop",
      "bad",
      "Ollama exited too often in a short time, so Warmline stopped restarting it. Its output below usually says why; then Start it again.",
    ],
    not_found: [
      "Not found",
      "bad",
      "No ollama program was found on PATH or at the configured executable.",
    ],
    failed: ["Failed to start", "bad", "Ollama could not be started. The message below says why."],
  };

  // Why each button makes no sense in a state (no entry: it is available).
  function reasons(daemon) {
    const state = daemon ? daemon.state : null;
    if (!daemon) {
      const why = "Ollama’s state is unknown while the gateway is not running";
      return { start: why, stop: why, restart: why };
    }
    if (state === "disabled") {
      const why = "Warmline does not supervise Ollama here (Settings → Supervise Ollama)";
      return { start: why, stop: why, restart: why };
    }
    if (state === "external") {
      const why = "Started outside Warmline: Warmline never stops or restarts it";
      return { start: "Already running", stop: why, restart: why };
    }
    if (state === "running") return { start: "Already running" };
    if (state === "starting") return { start: "Already starting", restart: "Wait until it has started" };
    if (state === "restarting") return { start: "A restart is already scheduled", restart: "A restart is already scheduled" };
    // stopped, crash_loop, not_found, failed: nothing runs.
    return { stop: "Not running", restart: "Not running: use Start" };
  }

  const busy = new Set(); // actions under way

  // ------------------------------------------------------------ render ------

  function renderState(daemon) {
    const pill = $("daemon-state");
    const [label, tone, explain] = daemon ? STATES[daemon.state] || [daemon.state, "", ""] : ["Unknown", "", ""];
    setText(pill, label);
    WL.setClass(pill, `pill ${tone}`);
    WL.setData(pill, "state", daemon ? daemon.state : "unknown");

    let text = daemon ? explain : "Ollama’s state appears while the gateway runs.";
    if (daemon && daemon.state === "restarting" && isNum(daemon.retry_in_ms)) {
      text = `Ollama exited unexpectedly. Warmline starts it again in ${fmt.duration(Math.ceil(daemon.retry_in_ms / 1000))}.`;
    }
    if (daemon && daemon.state === "not_found") {
      const hint = store.status && store.status.ollama && store.status.ollama.hint;
      if (hint) text = `${text} ${hint}`;
    }
    setText($("daemon-explain"), text);
    const message = daemon && daemon.message;
    setText($("daemon-message"), message || "");
    setHidden($("daemon-message"), !message || message === text);
  }

  function renderFacts(daemon) {
    const d = daemon || {};
    setText($("d-url"), d.url || WL.DASH);
    setText($("d-pid"), isNum(d.pid) ? String(d.pid) : WL.DASH);
    setText($("d-version"), d.version || WL.DASH);
    setText($("d-restarts"), daemon ? fmt.count(d.restarts) : WL.DASH);
    setText($("d-last-exit"), d.last_exit || WL.DASH);
    const exe = d.executable || WL.DASH;
    setText($("d-executable"), d.managed === false && d.state === "external" ? `${exe} (not started by Warmline)` : exe);
    renderUptime(Date.now());
  }

  function renderUptime(now) {
    const daemon = store.status && store.status.daemon;
    const since = daemon && daemon.up_since_ms;
    const up = since && (daemon.state === "running" || daemon.state === "external");
    setText($("d-uptime"), up ? fmt.uptime((now - since) / 1000) : WL.DASH);
  }

  function renderResources(daemon) {
    const r = daemon && daemon.resources;
    setHidden($("d-resources-empty"), Boolean(r));
    setText($("d-cpu"), r ? fmt.percentCpu(r.cpu_percent) : WL.DASH);
    setText($("d-rss"), r ? fmt.bytes(r.rss_bytes) : WL.DASH);
    setText($("d-procs"), r ? fmt.count(r.processes) : WL.DASH);
    const runners = r ? Math.max(0, r.processes - 1) : 0;
    setText($("d-procs-sub"), r ? `Ollama + ${runners} runner${runners === 1 ? "" : "s"}` : "");
    const total = r && r.system_total_bytes;
    const used = total ? total - r.system_available_bytes : null;
    setText($("d-sysmem"), total ? fmt.bytes(used) : WL.DASH);
    setText($("d-sysmem-sub"), total ? `used of ${fmt.bytes(total)}, ${fmt.bytes(r.system_available_bytes)} free` : "");
    $("d-sysmem-bar").style.width = total ? `${Math.min(100, (used / total) * 100).toFixed(1)}%` : "0%";
  }

  function renderActions(daemon) {
    const why = reasons(daemon);
    for (const action of ["start", "stop", "restart"]) {
      const button = $(`daemon-${action}`);
      setUnavailable(button, busy.size ? "Another action is under way" : why[action] || null);
      WL.setAttr(button, "aria-busy", busy.has(action) ? "true" : null);
    }
    // When nothing can be done, say why in words too: a tooltip alone is
    // invisible to touch and keyboard users.
    const none = ["start", "stop", "restart"].every((a) => why[a]);
    setText($("daemon-actions-why"), none ? why.stop : "");
  }

  const SETTING_ROWS = [
    ["Keep models loaded", "keep_alive", "OLLAMA_KEEP_ALIVE"],
    ["Parallel requests per model", "num_parallel", "OLLAMA_NUM_PARALLEL"],
    ["Models loaded at once", "max_loaded_models", "OLLAMA_MAX_LOADED_MODELS"],
  ];

  function renderSettings(daemon) {
    const asked = (store.settings && store.settings.settings && store.settings.settings.daemon) || {};
    const reported = (daemon && daemon.settings && daemon.settings.reported) || {};
    const mismatched = (daemon && daemon.settings && daemon.settings.mismatched) || [];
    WL.syncChildren(
      $("daemon-settings"),
      SETTING_ROWS,
      (row) => row[1],
      () => h("tr", {}, h("td"), h("td", { class: "mono" }), h("td", { class: "mono" })),
      (tr, [label, key, env]) => {
        setText(tr.children[0], `${label} (${env})`);
        setText(tr.children[1], asked[key] != null ? String(asked[key]) : WL.DASH);
        setText(tr.children[2], reported[env] != null ? reported[env] : WL.DASH);
        WL.setClass(tr, mismatched.some((m) => m.includes(env) || m.includes(key)) ? "mismatch" : "");
      },
    );
    const note = $("daemon-mismatch");
    let text = "";
    if (mismatched.length) text = `Ollama runs with other values than asked for: ${mismatched.join("; ")}.`;
    else if (daemon && daemon.state === "external") text = "An Ollama started elsewhere keeps its own settings.";
    setText(note, text);
    setHidden(note, !text);
  }

  let logView; // WL.logTail over #daemon-log

  function logLine(line) {
    const stream = line.stream === "stderr" ? "stderr" : null;
    return WL.logLine(line.at_ms, stream, h("span", { class: "log-text" }, line.text));
  }

  function render() {
    const daemon = store.status && store.status.daemon;
    renderState(daemon);
    renderFacts(daemon);
    renderResources(daemon);
    renderActions(daemon);
    renderSettings(daemon);
    logView.update((store.activity && store.activity.daemon_logs) || []);
  }

  // ----------------------------------------------------------- actions ------

  async function act(action) {
    busy.add(action);
    render();
    try {
      const daemon = await WL.invoke("daemon", { action });
      // The state above shows the result; no toast needed for success.
      if (store.status) WL.set("status", { ...store.status, daemon });
    } catch (err) {
      WL.toastError(err, `Could not ${action} Ollama`);
    } finally {
      busy.delete(action);
      render();
    }
  }

  function init() {
    logView = WL.logTail($("daemon-log"), {
      key: (l) => `${l.at_ms}|${l.stream}|${l.text}`,
      make: logLine,
      empty: "No output yet. Ollama’s output appears here when Warmline started it.",
      count: $("daemon-log-count"),
    });
    for (const action of ["start", "stop", "restart"]) {
      $(`daemon-${action}`).addEventListener("click", (e) => {
        if (!WL.isUnavailable(e.currentTarget)) act(action);
      });
    }
    $("daemon-edit-settings").addEventListener("click", () => WL.navigate("settings", "f-daemon-supervise"));
    WL.onTick((now) => WL.isActive("daemon") && renderUptime(now));
  }

  WL.view("daemon", {
    topics: ["status", "settings", "activity"],
    init,
    render,
    shown() {
      logView.follow.after();
    },
  });
})();
