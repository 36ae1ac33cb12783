// Webhooks (/dashboard/webhooks): endpoint URL and events, the signing secret, a test send, the
// delivery success chart and the delivery logs with retry.

import { COLORS, makeChart, timeLabels } from "./charts.js";
import {
  $,
  api,
  badge,
  bindTabs,
  connectLive,
  copyText,
  debounce,
  el,
  emptyRow,
  formatPercent,
  formatTime,
  initShell,
  renderPager,
  toast,
} from "./app.js";

const PAGE_SIZE = 10;
const MASK = "whsec_••••••••••••••••";
const state = { config: null, revealed: false, status: "", offset: 0, open: new Set(), eventTypes: [] };
const table = $("webhook-logs-table");
let chart = null;

// ---- Endpoint ----------------------------------------------------------------------------------

function message(kind, text) {
  const box = $("webhook-message");
  box.className = `alert ${kind}`;
  box.textContent = text;
  box.hidden = !text;
}

function renderEventChoices(selected) {
  const box = $("webhook-events");
  box.replaceChildren(
    ...state.eventTypes.map((type) =>
      el(
        "label",
        { class: "check" },
        el("input", { type: "checkbox", value: type, "data-test-id": `webhook-event-${type}`, checked: selected.includes(type) }),
        el("code", {}, type),
      ),
    ),
  );
}

function eventsMode() {
  return document.querySelector('input[name="events-mode"]:checked').value;
}

function renderConfig(config) {
  state.config = config;
  $("webhook-url-input").value = config.url || "";
  const all = !config.url || config.events.includes("*");
  $(all ? "webhook-events-all" : "webhook-events-some").checked = true;
  renderEventChoices(all ? [] : config.events);
  $("webhook-events").hidden = all;
  $("webhook-enabled-input").checked = config.url ? config.enabled : true;
  const stateBadge = $("webhook-state");
  if (!config.url) stateBadge.replaceChildren(el("span", { class: "badge" }, "not configured"));
  else stateBadge.replaceChildren(el("span", { class: `badge ${config.enabled ? "success" : "failed"}` }, config.enabled ? "enabled" : "disabled"));
  if (config.url && !config.enabled && config.disabled_reason) message("warn", `Disabled: ${config.disabled_reason}`);
  $("webhook-url-input").disabled = false;
  $("save-webhook-button").disabled = false;
  $("test-webhook-button").disabled = !config.url || !config.enabled;
  renderSecret();
}

function renderSecret() {
  const { config } = state;
  $("webhook-secret").textContent = state.revealed ? config.secret : MASK;
  $("reveal-secret-button").textContent = state.revealed ? "Hide" : "Reveal";
  $("previous-secret-note").textContent = config.previous_secret_expires_at
    ? `The previous secret also signs deliveries until ${formatTime(config.previous_secret_expires_at)}.`
    : "Every delivery is signed with this secret (X-Webhook-Signature and webhook-signature).";
}

async function loadConfig() {
  renderConfig(await api("/api/v1/webhooks/config"));
}

function bindEndpointForm() {
  for (const radio of document.querySelectorAll('input[name="events-mode"]')) {
    radio.addEventListener("change", () => ($("webhook-events").hidden = eventsMode() === "all"));
  }
  $("webhook-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    message("", "");
    const url = $("webhook-url-input").value.trim();
    if (!url) {
      message("error", "Enter the URL Paystream should send events to.");
      return;
    }
    let events = ["*"];
    if (eventsMode() === "some") {
      events = [...$("webhook-events").querySelectorAll("input:checked")].map((input) => input.value);
      if (events.length === 0) {
        message("error", "Pick at least one event, or choose all events.");
        return;
      }
    }
    const button = $("save-webhook-button");
    button.disabled = true;
    try {
      renderConfig(await api("/api/v1/webhooks/config", { method: "PUT", body: { url, events, enabled: $("webhook-enabled-input").checked } }));
      message("ok", "Endpoint saved.");
    } catch (error) {
      message("error", error.message);
    } finally {
      button.disabled = false;
    }
  });
  $("test-webhook-button").addEventListener("click", async () => {
    const button = $("test-webhook-button");
    button.disabled = true;
    try {
      const delivery = await api("/api/v1/webhooks/test", { method: "POST" });
      toast("Test webhook sent");
      state.status = "";
      state.offset = 0;
      await loadLogs();
      followDelivery(delivery.id, delivery.attempts);
    } catch (error) {
      message("error", error.message);
    } finally {
      button.disabled = false;
    }
  });
}

function bindSecret() {
  $("reveal-secret-button").addEventListener("click", () => {
    state.revealed = !state.revealed;
    renderSecret();
  });
  $("copy-secret-button").addEventListener("click", (event) => copyText(state.config.secret, event.currentTarget));
  $("rotate-secret-button").addEventListener("click", () => ($("rotate-confirm").hidden = false));
  $("rotate-cancel-button").addEventListener("click", () => ($("rotate-confirm").hidden = true));
  $("rotate-confirm-button").addEventListener("click", async () => {
    $("rotate-confirm").hidden = true;
    try {
      const config = await api("/api/v1/webhooks/config/rotate-secret", { method: "POST" });
      state.revealed = true;
      renderConfig(config);
      toast("Secret rotated: deploy the new one within 24 hours");
    } catch (error) {
      toast(error.message, "error");
    }
  });
}

// ---- Logs --------------------------------------------------------------------------------------

function responseText(delivery) {
  if (delivery.response_code) return `HTTP ${delivery.response_code}`;
  if (delivery.error) return delivery.error.length > 40 ? `${delivery.error.slice(0, 40)}…` : delivery.error;
  return "—";
}

function detailsRow(delivery) {
  return el(
    "tr",
    { class: "details", "data-test-id": `webhook-details-${delivery.id}` },
    el(
      "td",
      { colspan: 7 },
      el(
        "div",
        { class: "details-grid" },
        el("div", {}, el("h3", {}, "Delivery id"), el("code", {}, delivery.id)),
        el("div", {}, el("h3", {}, "Duration"), delivery.duration_ms === null ? "—" : `${delivery.duration_ms} ms`),
        el("div", {}, el("h3", {}, "Created"), formatTime(delivery.created_at)),
      ),
      delivery.error ? el("div", { class: "alert error" }, delivery.error) : null,
      el("h3", {}, "Payload"),
      el("pre", { class: "block light" }, JSON.stringify(delivery.payload, null, 2)),
      delivery.response_body ? [el("h3", {}, "Response body"), el("pre", { class: "block light" }, delivery.response_body)] : null,
    ),
  );
}

function logRows(delivery) {
  const toggle = el("button", { type: "button", class: "btn small link", "data-test-id": `webhook-toggle-${delivery.id}` }, state.open.has(delivery.id) ? "Hide" : "Details");
  const retry = el("button", { type: "button", class: "btn small", "data-test-id": `retry-webhook-${delivery.id}` }, "Retry");
  retry.addEventListener("click", async () => {
    retry.disabled = true;
    try {
      await api(`/api/v1/webhooks/${encodeURIComponent(delivery.id)}/retry`, { method: "POST" });
      toast("Retry sent");
      followDelivery(delivery.id, delivery.attempts);
    } catch (error) {
      toast(error.message, "error");
      retry.disabled = false;
    }
  });
  toggle.addEventListener("click", () => {
    if (state.open.has(delivery.id)) state.open.delete(delivery.id);
    else state.open.add(delivery.id);
    loadLogs();
  });
  const row = el(
    "tr",
    { "data-test-id": `webhook-log-${delivery.id}`, dataset: { status: delivery.status } },
    el("td", { dataset: { label: "Event" } }, el("code", {}, delivery.event)),
    el("td", { "data-test-id": `webhook-status-${delivery.id}`, dataset: { label: "Status" } }, badge(delivery.status)),
    el("td", { class: "num", "data-test-id": `webhook-attempts-${delivery.id}`, dataset: { label: "Attempts" } }, String(delivery.attempts)),
    el("td", { class: "muted", dataset: { label: "Response" } }, responseText(delivery)),
    el("td", { class: "muted", dataset: { label: "Last attempt" } }, formatTime(delivery.last_attempt_at)),
    el("td", { class: "muted", dataset: { label: "Next retry" } }, delivery.status === "pending" ? formatTime(delivery.next_retry_at) : "—"),
    el("td", { class: "num", dataset: { label: "" } }, el("div", { class: "row" }, toggle, retry)),
  );
  return state.open.has(delivery.id) ? [row, detailsRow(delivery)] : [row];
}

let logsRequest = 0;

async function loadLogs() {
  const ticket = ++logsRequest;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(state.offset) });
  if (state.status) params.set("status", state.status);
  let page;
  try {
    page = await api(`/api/v1/webhooks?${params}`);
  } catch (error) {
    toast(`Delivery logs could not be loaded: ${error.message}`, "error");
    return null;
  }
  if (ticket !== logsRequest) return page; // a newer load is on its way
  const rows = page.data.flatMap(logRows);
  if (rows.length === 0) {
    rows.push(
      emptyRow(7, state.status ? "Nothing here" : "No deliveries yet", state.config && state.config.url ? "Send a test webhook to see one." : "Save an endpoint URL, then send a test webhook."),
    );
  }
  table.querySelector("tbody").replaceChildren(...rows);
  renderPager(table.closest(".card").querySelector(".pager"), page, (offset) => {
    state.offset = offset;
    loadLogs();
  });
  return page;
}

/** After a send or a retry: reload the logs every second until that delivery's attempts move. */
function followDelivery(id, attempts) {
  let left = 15;
  const tick = async () => {
    const page = await loadLogs();
    const found = page && page.data.find((delivery) => delivery.id === id);
    left -= 1;
    if (left > 0 && (!found || found.attempts <= attempts || found.status === "pending" && found.attempts === attempts)) {
      setTimeout(tick, 1000);
    } else {
      loadSummary();
    }
  };
  setTimeout(tick, 500);
}

// ---- Chart -------------------------------------------------------------------------------------

async function loadSummary() {
  let summary;
  try {
    summary = await api("/api/v1/dashboard/webhooks/summary");
  } catch {
    return null;
  }
  const day = summary.last_24h;
  $("webhook-rate-24h").textContent =
    day.delivered + day.failing === 0 ? "no deliveries in 24 h" : `${formatPercent(day.success_rate)} delivered in 24 h`;
  const buckets = summary.per_bucket;
  const labels = timeLabels(buckets.start, buckets.step_s, buckets.delivered.length);
  const rate = buckets.success_rate.map((value) => (value === null ? null : Math.round(value * 1000) / 10));
  if (chart) {
    chart.data.labels = labels;
    chart.data.datasets[0].data = rate;
    chart.data.datasets[1].data = buckets.delivered;
    chart.data.datasets[2].data = buckets.failing;
    chart.update();
    return summary;
  }
  chart = makeChart($("webhooks-chart"), {
    data: {
      labels,
      datasets: [
        { type: "line", label: "Success rate", data: rate, yAxisID: "rate", borderColor: COLORS.accent, backgroundColor: COLORS.accent, tension: 0.3, spanGaps: true, pointRadius: 3 },
        { type: "bar", label: "Delivered", data: buckets.delivered, yAxisID: "count", backgroundColor: "rgba(22, 163, 74, 0.35)", borderRadius: 3, stack: "n" },
        { type: "bar", label: "Failing", data: buckets.failing, yAxisID: "count", backgroundColor: "rgba(225, 29, 72, 0.45)", borderRadius: 3, stack: "n" },
      ],
    },
    options: {
      scales: {
        x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, maxTicksLimit: 6 } },
        rate: { position: "left", min: 0, max: 100, ticks: { callback: (value) => `${value}%` }, grid: { color: COLORS.grid } },
        count: { position: "right", stacked: true, beginAtZero: true, ticks: { precision: 0 }, grid: { display: false } },
      },
    },
  });
  return summary;
}

async function main() {
  await initShell();
  const summary = await loadSummary();
  state.eventTypes = summary ? summary.event_types : [];
  // The form is enabled by the first render of the saved configuration, after which nothing
  // renders a configuration older than what the merchant saved.
  await Promise.all([loadConfig(), loadLogs()]);
  bindEndpointForm();
  bindSecret();
  bindTabs($("webhook-filter"), (status) => {
    state.status = status;
    state.offset = 0;
    loadLogs();
  });
  const refresh = debounce(() => {
    loadLogs();
    loadSummary();
  }, 1500);
  await connectLive({ "payment:status-update": refresh, "refund:status-update": refresh });
  setInterval(loadLogs, 5000);
  setInterval(loadSummary, 30_000);
}

main();
