// Warmline status window.
//
// The Rust side owns the data: one `gateway_status` call paints the first frame,
// then the window only listens to `warmline://status`, which the shell pushes
// about once a second. Every push is a whole snapshot, so render() is a pure
// function of it and a missed event costs nothing.

"use strict";

const STATUS_EVENT = "warmline://status";
const tauri = window.__TAURI__;

const $ = (id) => document.getElementById(id);

const numberFormat = new Intl.NumberFormat();

function count(n) {
  return typeof n === "number" ? numberFormat.format(n) : "—";
}

function ms(value) {
  if (typeof value !== "number" || !Number.isFinite(value)) return "—";
  if (value >= 1000) return `${(value / 1000).toFixed(2)} s`;
  if (value >= 10) return `${Math.round(value)} ms`;
  return `${value.toFixed(1)} ms`;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function emptyRow(columns, text) {
  const tr = document.createElement("tr");
  const td = cell(text, "empty");
  td.colSpan = columns;
  tr.append(td);
  return tr;
}

function setPill(text, tone) {
  const pill = $("state-pill");
  pill.textContent = text;
  pill.className = `pill ${tone}`;
}

const HEALTH_PILL = {
  ok: ["Running", "ok"],
  degraded: ["Degraded", "warn"],
  down: ["No upstream reachable", "bad"],
};

function renderRunning(status) {
  const { health, stats } = status;
  $("listen-url").textContent = status.listen;

  const [label, tone] = HEALTH_PILL[health.status] || [health.status, "warn"];
  setPill(label, tone);
  const up = health.upstreams.filter((u) => u.reachable).length;
  $("health").textContent =
    `v${health.version} · ${up} of ${health.upstreams.length} upstream${health.upstreams.length === 1 ? "" : "s"} reachable`;

  $("m-requests").textContent = count(stats.requests);
  $("m-errors").textContent = count(stats.errors);
  $("m-errors").classList.toggle("bad", stats.errors > 0);
  $("m-inflight").textContent = count(stats.in_flight);

  // The core keeps percentiles per route kind; the headline shows the busiest.
  const routes = Object.entries(stats.routes).sort((a, b) => b[1].count - a[1].count);
  const busiest = routes[0];
  $("m-p50").textContent = busiest ? ms(busiest[1].p50_ms) : "—";
  $("m-p95").textContent = busiest ? ms(busiest[1].p95_ms) : "—";
  $("m-p99").textContent = busiest ? ms(busiest[1].p99_ms) : "—";
  $("latency-scope").textContent = busiest
    ? `Latency percentiles of ${busiest[0]}, the busiest route. Every route is listed below.`
    : "Latency percentiles appear after the first proxied request.";

  const upstreams = $("upstreams");
  upstreams.replaceChildren(
    ...health.upstreams.map((u) => {
      const tr = document.createElement("tr");
      tr.append(
        cell(u.url),
        cell(u.reachable ? "yes" : "no", u.reachable ? "yes" : "no"),
        cell(ms(u.last_latency_ms), "num"),
        cell(u.last_error || "", "err"),
      );
      return tr;
    }),
  );

  const rows = $("routes");
  rows.replaceChildren(
    ...(routes.length
      ? routes.map(([name, r]) => {
          const tr = document.createElement("tr");
          tr.append(
            cell(name),
            cell(count(r.count), "num"),
            cell(ms(r.p50_ms), "num"),
            cell(ms(r.p95_ms), "num"),
            cell(ms(r.p99_ms), "num"),
          );
          return tr;
        })
      : [emptyRow(5, "No requests yet")]),
  );
}

function renderFailed(status) {
  setPill("Not running", "bad");
  $("error-code").textContent = status.error.code;
  $("error-message").textContent = status.error.message;
  $("error-hint").textContent = status.error.hint || "";
  $("error-hint").hidden = !status.error.hint;
}

function render(status) {
  document.body.dataset.state = status.state;
  $("error-card").hidden = status.state !== "failed";
  if (status.state === "running") {
    renderRunning(status);
  } else if (status.state === "failed") {
    renderFailed(status);
  } else if (status.state === "stopped") {
    setPill("Stopped", "bad");
  }
  $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
}

function showShellError(err) {
  // A command failed: say so in the error card rather than leaving stale numbers.
  render({
    state: "failed",
    error: {
      code: (err && err.code) || "shell",
      message: (err && err.message) || String(err),
    },
  });
}

async function main() {
  $("quit").addEventListener("click", () => {
    tauri.core.invoke("tray_action", { action: "quit" }).catch(showShellError);
  });

  await tauri.event.listen(STATUS_EVENT, (event) => {
    document.body.dataset.pushes = String(Number(document.body.dataset.pushes) + 1);
    render(event.payload);
  });
  try {
    render(await tauri.core.invoke("gateway_status"));
  } catch (err) {
    showShellError(err);
  }
}

main();
