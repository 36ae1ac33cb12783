// A payment's page (/dashboard/payments/<id>): details, events timeline, refunds and the refund form.

import {
  $,
  ApiError,
  api,
  badge,
  connectLive,
  debounce,
  el,
  emptyRow,
  formatAmount,
  formatTime,
  initShell,
  majorUnits,
  newIdempotencyKey,
  parseAmount,
  paymentMethod,
  toast,
} from "./app.js";

const paymentId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const state = { payment: null, refundable: 0 };
const path = `/api/v1/payments/${encodeURIComponent(paymentId)}`;

const EVENT_LABELS = {
  "payment.created": "Payment created",
  "payment.pending": "Sent for processing",
  "payment.success": "Payment succeeded",
  "payment.failed": "Payment failed",
  "payment.captured": "Payment captured",
  "payment.authorized": "Payment authorized",
  "refund.created": "Refund created",
  "refund.processed": "Refund processed",
  "refund.failed": "Refund failed",
  "payment.dispute.created": "Dispute opened",
  "payment.dispute.won": "Dispute won",
  "payment.dispute.lost": "Dispute lost",
  "payment.dispute.closed": "Dispute closed",
};

function showPageError(message) {
  const box = $("payment-error");
  box.textContent = message;
  box.hidden = false;
  for (const part of document.querySelectorAll('.grid-2, [data-test-id="refunds-card"]')) part.hidden = true;
}

function detail(label, value, testId) {
  return [el("dt", {}, label), el("dd", testId ? { "data-test-id": testId } : {}, value)];
}

function renderPayment(payment) {
  state.payment = payment;
  state.refundable = payment.amount - payment.amount_refunded;
  document.title = `${formatAmount(payment.amount, payment.currency)} · ${payment.id} · Paystream Dashboard`;
  $("payment-id").textContent = payment.id;
  const hero = $("payment-amount");
  hero.replaceChildren(formatAmount(payment.amount, payment.currency), el("small", {}, payment.currency));
  $("payment-status").replaceChildren(badge(payment.status, "large"));
  const rows = [
    detail("Payment ID", el("code", {}, payment.id)),
    detail("Order", el("code", {}, payment.order_id)),
    detail("Method", paymentMethod(payment)),
    detail("Status", payment.status),
    detail("Captured", payment.captured ? `Yes, ${formatTime(payment.captured_at)}` : "No"),
    detail("Refunded", formatAmount(payment.amount_refunded, payment.currency), "payment-refunded"),
    detail("Created", formatTime(payment.created_at)),
    detail("Updated", formatTime(payment.updated_at)),
  ];
  if (payment.error_code) {
    rows.push(detail("Error", `${payment.error_code}: ${payment.error_description || ""}`));
  }
  $("payment-details").replaceChildren(...rows.flat());
  $("refund-currency").textContent = currencySymbol(payment.currency);
  $("refundable-amount").textContent =
    payment.status === "success" ? `${formatAmount(state.refundable, payment.currency)} refundable` : "";
  const form = $("refund-form");
  const canRefund = payment.status === "success" && state.refundable > 0;
  for (const control of form.querySelectorAll("input, button")) control.disabled = !canRefund;
  const amountInput = $("refund-amount-input");
  // Prefilled with the full refundable amount, never over what the merchant typed (live updates
  // re-render this page at any moment).
  if (canRefund && !amountInput.value) amountInput.value = majorUnits(state.refundable, payment.currency);
  $("refund-note").textContent = canRefund
    ? "Full or partial: change the amount for a partial refund."
    : payment.status === "success"
      ? "This payment is fully refunded."
      : `Only successful payments can be refunded; this one is ${payment.status}.`;
}

function currencySymbol(currency) {
  try {
    const parts = new Intl.NumberFormat("en-IN", { style: "currency", currency }).formatToParts(0);
    return (parts.find((part) => part.type === "currency") || {}).value || currency;
  } catch {
    return currency;
  }
}

function renderRefunds(page) {
  const rows = page.data.map((refund) =>
    el(
      "tr",
      { "data-test-id": `refund-row-${refund.id}` },
      el("td", { class: "num amount", dataset: { label: "Amount" } }, formatAmount(refund.amount, refund.currency)),
      el("td", { "data-test-id": `refund-status-${refund.id}`, dataset: { label: "Status" } }, badge(refund.status)),
      el("td", { class: "id", dataset: { label: "Refund ID" } }, refund.id),
      el("td", { dataset: { label: "Reason" } }, refund.reason || "—"),
      el("td", { class: "muted", dataset: { label: "Created" } }, formatTime(refund.created_at)),
    ),
  );
  if (rows.length === 0) rows.push(emptyRow(5, "No refunds yet", "Refunds of this payment appear here.", { compact: true }));
  $("refunds-table").querySelector("tbody").replaceChildren(...rows);
}

function renderTimeline(timeline) {
  const items = timeline.data.map((entry) => {
    const subject = entry.object || {};
    const status = entry.type.split(".").pop();
    const label = EVENT_LABELS[entry.type] || entry.type;
    const what = [];
    if (subject.entity === "refund" && subject.amount) what.push(formatAmount(subject.amount, subject.currency));
    if (subject.error_code) what.push(`${subject.error_code}: ${subject.error_description || ""}`);
    if (subject.entity === "refund" && subject.id) what.push(subject.id);
    return el(
      "li",
      { class: `${status} ${subject.entity === "refund" ? "refund" : ""}`, "data-test-id": `timeline-event-${entry.type}` },
      el("div", { class: "event" }, label),
      el("div", { class: "when" }, `${formatTime(entry.occurred_at)} · `, el("code", {}, entry.type)),
      what.length ? el("div", { class: "what" }, what.join(" · ")) : null,
    );
  });
  if (items.length === 0) items.push(el("li", {}, el("div", { class: "what" }, "No events recorded yet.")));
  $("payment-timeline").replaceChildren(...items);
  $("timeline-source").textContent = timeline.source === "record" ? "from the payment's records" : "";
}

async function loadAll() {
  try {
    const payment = await api(path);
    renderPayment(payment);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      showPageError("No payment with this id in your account.");
      return;
    }
    showPageError(`The payment could not be loaded: ${error.message}`);
    return;
  }
  const [refunds, timeline] = await Promise.all([api(`${path}/refunds?limit=100`), api(`${path}/events`)]);
  renderRefunds(refunds);
  renderTimeline(timeline);
}

function bindRefundForm() {
  const form = $("refund-form");
  const errorBox = $("refund-error");
  const button = $("refund-button");
  $("refund-full-button").addEventListener("click", () => {
    $("refund-amount-input").value = majorUnits(state.refundable, state.payment.currency);
    errorBox.hidden = true;
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const { currency } = state.payment;
    const amount = parseAmount($("refund-amount-input").value, currency);
    if (amount === null || amount <= 0) {
      errorBox.textContent = "Enter the amount to refund, like 125.50.";
      errorBox.hidden = false;
      return;
    }
    const reason = $("refund-reason-input").value.trim();
    button.disabled = true;
    button.textContent = "Refunding…";
    try {
      const refund = await api(`${path}/refunds`, {
        method: "POST",
        body: reason ? { amount, reason } : { amount },
        idempotencyKey: newIdempotencyKey(),
      });
      toast(`Refund of ${formatAmount(refund.amount, refund.currency)} created`);
      $("refund-reason-input").value = "";
      $("refund-amount-input").value = "";
      await loadAll();
    } catch (error) {
      // The API's own words: it knows the refundable amount, even under concurrent refunds.
      const hint =
        error.code === "REFUND_AMOUNT_EXCEEDS_REFUNDABLE"
          ? ` At most ${formatAmount(state.refundable, currency)} can still be refunded.`
          : "";
      errorBox.textContent = `Refund refused: ${error.message}.${hint}`;
      errorBox.hidden = false;
    } finally {
      button.textContent = "Refund";
      button.disabled = !(state.payment.status === "success" && state.refundable > 0);
    }
  });
}

async function main() {
  await initShell();
  bindRefundForm(); // its controls stay disabled until the payment is shown
  await loadAll();
  const reload = debounce(loadAll, 300);
  await connectLive({
    "payment:status-update": (update) => update.paymentId === paymentId && reload(),
    "refund:status-update": (update) => update.paymentId === paymentId && reload(),
  });
}

main();
