// Webhooks (/dashboard/webhooks): the merchant's endpoints (filter, state, rate limit), a banner for
// each one Paystream disabled, the form that adds one, the delivery success chart and every
// endpoint's delivery logs with retry. Each endpoint's own page is webhook-endpoint.js.

import { COLORS, makeChart, timeLabels } from "./charts.js";
import { $, api, connectLive, debounce, el, emptyRow, formatPercent, formatTime, initShell, toast } from "./app.js";
import { deliveryLog } from "./delivery-logs.js";
import { endpointForm } from "./endpoint-form.js";
import {
  capitalize,
  defaultBadge,
  endpointPath,
  endpointState,
  filterChips,
  isAutoDisabled,
  rateLimitText,
  shortUrl,
  stateBadge,
  stateNote,
} from "./endpoint-state.js";

const MAX_ENDPOINTS = 20; // paystream_api.webhook_api.store.MAX_ENDPOINTS
const state = { endpoints: null, byId: new Map(), added: null };
let chart = null;
let form = null;

// ---- Endpoints ---------------------------------------------------------------------------------

function endpointRow(endpoint) {
  const link = el("a", { href: endpointPath(endpoint), class: "endpoint-link mono", "data-test-id": `endpoint-link-${endpoint.id}` }, endpoint.url);
  const note = stateNote(endpoint);
  const row = el(
    "tr",
    {
      class: `clickable endpoint-row ${isAutoDisabled(endpoint) ? "alarm" : ""}`.trim(),
      "data-test-id": `endpoint-row-${endpoint.id}`,
      dataset: { state: endpointState(endpoint) },
    },
    el(
      "td",
      { class: "endpoint-main", dataset: { label: "Endpoint" } },
      el("div", { class: "endpoint-name" }, link, endpoint.is_default ? defaultBadge() : null),
      endpoint.description ? el("div", { class: "endpoint-description" }, endpoint.description) : null,
    ),
    el("td", { dataset: { label: "Events" }, "data-test-id": `endpoint-events-${endpoint.id}` }, filterChips(endpoint.events)),
    el(
      "td",
      { dataset: { label: "State" }, "data-test-id": `endpoint-state-${endpoint.id}` },
      el("div", { class: "state-cell" }, stateBadge(endpoint), note ? el("div", { class: "state-note" }, note) : null),
    ),
    el("td", { class: "num muted", dataset: { label: "Rate limit" } }, rateLimitText(endpoint)),
    el("td", { class: "num chevron", "aria-hidden": "true", dataset: { label: "" } }, "›"),
  );
  row.addEventListener("click", (event) => {
    if (!event.target.closest("a")) location.assign(endpointPath(endpoint));
  });
  if (state.added === endpoint.id) row.classList.add("flash");
  return row;
}

function banner(endpoint) {
  return el(
    "div",
    { class: "alert error banner", role: "alert", "data-test-id": `disabled-banner-${endpoint.id}` },
    el("div", { class: "banner-mark", "aria-hidden": "true" }, "!"),
    el(
      "div",
      { class: "banner-body" },
      el("div", { class: "banner-title" }, "Paystream disabled an endpoint: ", el("span", { class: "mono" }, shortUrl(endpoint.url))),
      el(
        "div",
        {},
        `${capitalize(endpoint.disabled_reason)}, so it was disabled on ${formatTime(endpoint.disabled_at)}. `,
        "Nothing is sent to it until you enable it again; then recover the deliveries that failed meanwhile.",
      ),
    ),
    el("a", { class: "btn small", href: endpointPath(endpoint), "data-test-id": `disabled-banner-open-${endpoint.id}` }, "Review endpoint"),
  );
}

function renderEndpoints(endpoints) {
  state.endpoints = endpoints;
  state.byId = new Map(endpoints.map((endpoint) => [endpoint.id, endpoint]));
  const rows = endpoints.map(endpointRow);
  state.added = null; // flashed once
  if (rows.length === 0) {
    const add = el("button", { type: "button", class: "btn primary", "data-test-id": "empty-add-endpoint-button" }, "+ Add endpoint");
    add.addEventListener("click", openForm);
    const empty = emptyRow(5, "No endpoints yet", "Add the URL of your server, and Paystream sends it your payments' events as they happen.");
    empty.querySelector(".empty").append(el("div", { class: "empty-action" }, add));
    rows.push(empty);
  }
  $("endpoints-table").querySelector("tbody").replaceChildren(...rows);
  $("endpoints-count").textContent = endpoints.length ? `${endpoints.length} of ${MAX_ENDPOINTS}` : "";
  const full = endpoints.length >= MAX_ENDPOINTS;
  const button = $("add-endpoint-button");
  button.disabled = full;
  button.title = full ? `At most ${MAX_ENDPOINTS} endpoints: delete one first` : "";
  const disabled = endpoints.filter(isAutoDisabled);
  const banners = $("disabled-banners");
  banners.replaceChildren(...disabled.map(banner));
  banners.hidden = disabled.length === 0;
}

async function loadEndpoints() {
  try {
    renderEndpoints((await api("/api/v1/webhook-endpoints")).data);
  } catch (error) {
    toast(`Endpoints could not be loaded: ${error.message}`, "error");
  }
}

function openForm() {
  form.setEndpoint(null);
  $("add-endpoint-card").hidden = false;
  $("add-endpoint-card").scrollIntoView({ block: "nearest" });
  form.focus();
}

function closeForm() {
  $("add-endpoint-card").hidden = true;
}

function bindAddForm(eventTypes) {
  form = endpointForm($("endpoint-form"), {
    eventTypes,
    idPrefix: "add-endpoint",
    submitLabel: "Add endpoint",
    onCancel: closeForm,
    onSubmit: async (fields) => {
      const created = await api("/api/v1/webhook-endpoints", { method: "POST", body: fields });
      state.added = created.id;
      closeForm();
      await loadEndpoints();
      toast("Endpoint added: open it to see its signing secret or send a test");
    },
  });
  $("add-endpoint-button").addEventListener("click", openForm);
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

// ---- Logs --------------------------------------------------------------------------------------

function endpointCell(delivery) {
  const endpoint = state.byId.get(delivery.endpoint_id);
  if (!endpoint) return el("span", { class: "gone" }, "to a deleted endpoint");
  return ["to ", el("a", { href: endpointPath(endpoint), title: endpoint.url }, shortUrl(endpoint.url))];
}

function retryBlocked(delivery) {
  const endpoint = state.byId.get(delivery.endpoint_id);
  if (!endpoint) return "The endpoint was deleted";
  return endpoint.enabled ? null : "The endpoint is disabled: enable it to retry";
}

async function main() {
  await initShell();
  const summary = await loadSummary();
  bindAddForm(summary ? summary.event_types : []);
  await loadEndpoints();
  const logs = deliveryLog($("webhook-logs-card"), {
    endpointCell,
    retryBlocked,
    empty: () =>
      state.endpoints && state.endpoints.length
        ? ["No deliveries yet", "Open an endpoint and send a test webhook to see one."]
        : ["No deliveries yet", "Add an endpoint, then send it a test webhook."],
    onSettled: loadSummary,
  });
  await logs.load();
  const refresh = debounce(() => {
    logs.load();
    loadSummary();
  }, 1500);
  await connectLive({ "payment:status-update": refresh, "refund:status-update": refresh });
  // Endpoints change state on their own (a dispatcher disables one that keeps failing).
  setInterval(() => {
    loadEndpoints();
    logs.load();
  }, 5000);
  setInterval(loadSummary, 30_000);
}

main();
