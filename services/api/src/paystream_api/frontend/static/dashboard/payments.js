// Payments (/dashboard): totals, payments per minute, and the table that follows payments live.

import { COLORS, makeChart, timeLabels } from "./charts.js";
import {
  $,
  api,
  badge,
  bindTabs,
  connectLive,
  debounce,
  el,
  emptyRow,
  formatAmount,
  formatCount,
  formatPercent,
  formatTime,
  initShell,
  paymentMethod,
  renderPager,
  toast,
} from "./app.js";

const PAGE_SIZE = 20;
const state = { status: "", offset: 0, shown: new Map() };
const table = $("payments-table");
const tbody = table.querySelector("tbody");
let chart = null;

function paymentRow(payment) {
  const open = () => location.assign(`/dashboard/payments/${encodeURIComponent(payment.id)}`);
  const statusCell = el(
    "td",
    { "data-test-id": `payment-status-${payment.id}`, dataset: { label: "Status" } },
    badge(payment.status),
  );
  const row = el(
    "tr",
    {
      class: "clickable",
      tabindex: 0,
      "data-test-id": `payment-row-${payment.id}`,
      onclick: open,
      onkeydown: (event) => event.key === "Enter" && open(),
    },
    el("td", { class: "num amount", dataset: { label: "Amount" } }, formatAmount(payment.amount, payment.currency)),
    statusCell,
    el("td", { class: "id", dataset: { label: "Payment ID" } }, payment.id),
    el("td", { class: "id", dataset: { label: "Order" } }, payment.order_id),
    el("td", { dataset: { label: "Method" } }, paymentMethod(payment)),
    el("td", { class: "muted", dataset: { label: "Created" } }, formatTime(payment.created_at)),
  );
  return { row, statusCell };
}

async function loadPayments() {
  const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(state.offset) });
  if (state.status) params.set("status", state.status);
  let page;
  try {
    page = await api(`/api/v1/payments?${params}`);
  } catch (error) {
    toast(`Payments could not be loaded: ${error.message}`, "error");
    return;
  }
  state.shown.clear();
  const rows = page.data.map((payment) => {
    const made = paymentRow(payment);
    state.shown.set(payment.id, made.statusCell);
    return made.row;
  });
  if (rows.length === 0) {
    const filtered = state.status ? `No ${state.status} payments.` : "Payments you create with the API appear here as they happen.";
    rows.push(emptyRow(6, state.status ? "Nothing here" : "No payments yet", filtered));
  }
  tbody.replaceChildren(...rows);
  renderPager(table.closest(".card").querySelector(".pager"), page, (offset) => {
    state.offset = offset;
    loadPayments();
  });
}

async function loadSummary() {
  let summary;
  try {
    summary = await api("/api/v1/dashboard/payments/summary");
  } catch {
    return;
  }
  const { totals, per_minute: perMinute } = summary;
  $("total-count").textContent = formatCount(totals.count);
  $("total-pending").textContent = totals.pending ? `${formatCount(totals.pending)} pending` : "none pending";
  const main = totals.volume[0];
  $("total-amount").textContent = main ? formatAmount(main.amount, main.currency) : formatAmount(0, "INR");
  const others = totals.volume.length > 1 ? ` · +${totals.volume.length - 1} more currencies` : "";
  $("total-refunded").textContent = main && main.refunded ? `${formatAmount(main.refunded, main.currency)} refunded${others}` : `nothing refunded${others}`;
  const rate = $("success-rate");
  rate.textContent = formatPercent(totals.success_rate);
  rate.classList.toggle("good", totals.success_rate !== null && totals.success_rate >= 0.9);
  rate.classList.toggle("bad", totals.success_rate !== null && totals.success_rate < 0.7);
  $("success-note").textContent = `${formatCount(totals.succeeded)} succeeded · ${formatCount(totals.failed)} failed`;
  const series = perMinute.series;
  const count = series.success.length;
  const lastHour = ["success", "failed", "pending"].reduce((sum, key) => sum + series[key].reduce((a, b) => a + b, 0), 0);
  $("last-hour-count").textContent = formatCount(lastHour);
  const labels = timeLabels(perMinute.start, perMinute.step_s, count);
  const datasets = [
    { label: "Succeeded", data: series.success, backgroundColor: COLORS.success },
    { label: "Pending", data: series.pending, backgroundColor: COLORS.pending },
    { label: "Failed", data: series.failed, backgroundColor: COLORS.failed },
  ].map((dataset) => ({ ...dataset, borderRadius: 3, maxBarThickness: 14 }));
  if (chart) {
    chart.data.labels = labels;
    chart.data.datasets.forEach((dataset, index) => (dataset.data = datasets[index].data));
    chart.update();
    return;
  }
  chart = makeChart($("payments-chart"), {
    type: "bar",
    data: { labels, datasets },
    options: {
      scales: {
        x: { stacked: true, grid: { display: false }, ticks: { maxTicksLimit: 12, maxRotation: 0 } },
        y: { stacked: true, beginAtZero: true, ticks: { precision: 0 }, grid: { color: COLORS.grid } },
      },
    },
  });
}

const reloadPayments = debounce(loadPayments, 250);
const reloadSummary = debounce(loadSummary, 800);

function onStatusUpdate(update) {
  const status = String(update.status || "").toLowerCase();
  const cell = state.shown.get(update.paymentId);
  if (cell) {
    cell.replaceChildren(badge(status));
    const row = cell.closest("tr");
    row.classList.remove("flash");
    void row.offsetWidth; // restart the highlight
    row.classList.add("flash");
  } else if (state.offset === 0 && (!state.status || state.status === status)) {
    reloadPayments(); // a payment this page has not seen: it belongs at the top
  }
  reloadSummary();
}

async function main() {
  await initShell();
  bindTabs($("status-filter"), (status) => {
    state.status = status;
    state.offset = 0;
    loadPayments();
  });
  await Promise.all([loadPayments(), loadSummary()]);
  await connectLive({ "payment:status-update": onStatusUpdate });
  setInterval(loadSummary, 30_000); // the chart's hour moves on
}

main();
