// The hosted checkout page: `/checkout?order_id=&key=[&embedded=true]`.
//
// Loads the order (merchant name, amount), lets the payer pay by UPI or card with every field
// checked while typing, creates the payment through the public endpoint (one Idempotency-Key per
// attempt, reused when the same attempt is retried after a network error), follows it live (or by
// polling), and shows success or failure. Embedded, it tells the SDK the result by postMessage;
// standalone, it offers the order's return link.

import { ApiError, NetworkError, createApi, newIdempotencyKey } from "./api.js";
import { createParentChannel } from "./embed.js";
import { formatAmount } from "./format.js";
import { followPayment } from "./live.js";
import * as check from "./validate.js";

// The processing screen stays up at least this long: a payment that settles in 300 ms would
// otherwise flash a spinner the payer cannot read.
const MIN_PROCESSING_MS = 1200;
const CREATE_RETRIES = [1000, 2000, 4000];

const params = new URLSearchParams(window.location.search);
const orderId = (params.get("order_id") || "").trim();
const key = (params.get("key") || "").trim();
const parent = createParentChannel(params.get("embedded") === "true");
if (parent.framed) document.documentElement.classList.add("embedded");

const $ = (id) => document.getElementById(id);
const root = $("checkout");
const STATES = {
  loading: $("loading-state"),
  notice: $("notice-state"),
  form: $("pay-form"),
  processing: $("processing-state"),
  success: $("success-state"),
  failure: $("failure-state"),
};

const api = createApi(key);
let order = null;
let method = "upi";
let busy = false;
let attempt = null; // { key, fingerprint }: the Idempotency-Key of the payment being tried
let follower = null;

// ---- screens ---------------------------------------------------------------------------------

function show(state) {
  for (const [name, section] of Object.entries(STATES)) section.hidden = name !== state;
  root.dataset.state = state;
  reportHeight();
}

// Embedded, the page tells the SDK how tall its content is, so that the modal fits it instead of
// showing a fixed box with blank space (or a scroll bar) under it.
const BODY_PADDING_PX = 30; // .checkout-body's top and bottom padding
let reportedHeight = 0;

function reportHeight() {
  if (!parent.framed) return;
  const visible = Object.values(STATES).find((section) => !section.hidden);
  const header = root.querySelector(".checkout-header");
  const footer = root.querySelector(".checkout-footer");
  const height = Math.ceil(header.offsetHeight + footer.offsetHeight + BODY_PADDING_PX + (visible ? visible.offsetHeight : 0));
  if (height !== reportedHeight) {
    reportedHeight = height;
    parent.post({ type: "resize", height });
  }
}

if (parent.framed && typeof ResizeObserver === "function") {
  const observer = new ResizeObserver(() => reportHeight());
  for (const section of Object.values(STATES)) observer.observe(section);
  observer.observe(root.querySelector(".checkout-header"));
}

function safeReturnUrl(extra) {
  if (parent.framed || !order || !order.return_url) return null;
  try {
    const url = new URL(order.return_url);
    if (url.protocol !== "https:" && url.protocol !== "http:") return null;
    for (const [name, value] of Object.entries(extra || {})) url.searchParams.set(name, value);
    return url.href;
  } catch (_) {
    return null;
  }
}

function showReturnLink(link, extra) {
  const href = safeReturnUrl(extra);
  link.hidden = href === null;
  if (href !== null) {
    link.href = href;
    link.textContent = `Return to ${order.merchant.name}`;
  }
}

/** The header without an order (a bad link): the checkout's own name instead of a merchant's. */
function renderWithoutOrder() {
  $("merchant-name").textContent = "Secure checkout";
  $("merchant-logo").textContent = "P";
  $("order-line").textContent = "Paystream";
  root.querySelector(".amount-block").hidden = true;
}

function notice(title, text, { returnLink = false } = {}) {
  if (!order) renderWithoutOrder();
  $("notice-title").textContent = title;
  $("notice-text").textContent = text;
  const link = $("notice-return");
  if (returnLink) showReturnLink(link, { paystream_order_id: order.id });
  else link.hidden = true;
  show("notice");
}

function renderOrder() {
  const name = order.merchant.name;
  $("merchant-name").textContent = name;
  $("merchant-logo").textContent = (name.trim()[0] || "P").toUpperCase();
  $("order-line").textContent = order.receipt ? `Order ${order.receipt}` : `Order ${order.id}`;
  $("order-amount").textContent = amountText();
  $("test-badge").hidden = !order.test_mode;
  $("pay-button").textContent = `Pay ${amountText()}`;
  document.title = `Pay ${name} · Paystream`;
}

function amountText() {
  return formatAmount(order.amount_due, order.currency);
}

// ---- loading ---------------------------------------------------------------------------------

async function load() {
  if (!orderId || !key) {
    notice("This payment link is incomplete", "Ask the merchant for a new payment link.");
    return;
  }
  try {
    order = await api.order(orderId);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      notice("Order not found", "We could not find this order. Check the link, or ask the merchant for a new one.");
    } else if (error instanceof ApiError && error.status === 401) {
      notice("Checkout unavailable", "This payment link is not valid. Ask the merchant for a new one.");
    } else if (error instanceof ApiError && error.status === 429) {
      notice("Too many requests", `Please wait ${error.retryAfterS || 60} seconds, then reload this page.`);
    } else {
      notice("We could not load this checkout", "Check your connection and reload the page.");
    }
    return;
  }
  renderOrder();
  if (order.status === "paid") {
    notice("This order is already paid", "There is nothing more to pay. Thank you!", { returnLink: true });
    return;
  }
  setMethod("upi");
  show("form");
}

// ---- fields ----------------------------------------------------------------------------------

const fields = {
  vpa: { input: $("vpa"), error: $("vpa-error"), check: () => check.checkVpa($("vpa").value) },
  number: {
    input: $("card-number"),
    error: $("card-number-error"),
    check: () => check.checkCardNumber($("card-number").value),
  },
  expiry: { input: $("expiry"), error: $("expiry-error"), check: () => check.checkExpiry($("expiry").value) },
  cvv: { input: $("cvv"), error: $("cvv-error"), check: () => check.checkCvv($("cvv").value, network()) },
  name: {
    input: $("holder-name"),
    error: $("name-error"),
    check: () => check.checkHolderName($("holder-name").value),
  },
};
const METHOD_FIELDS = { upi: ["vpa"], card: ["number", "expiry", "cvv", "name"] };
// The API's field names (422 answers) -> ours.
const API_FIELDS = {
  vpa: "vpa",
  "card.number": "number",
  "card.expiry_month": "expiry",
  "card.expiry_year": "expiry",
  "card.cvv": "cvv",
  "card.holder_name": "name",
};
const touched = new Set();

function network() {
  return check.cardNetwork(check.digitsOf(fields.number.input.value));
}

function setFieldError(name, message) {
  const field = fields[name];
  field.error.textContent = message || "";
  field.error.hidden = !message;
  field.input.setAttribute("aria-invalid", message ? "true" : "false");
}

/** Check a field; show its error when it is definite, the field was left, or `force`. */
function refresh(name, force = false) {
  const result = fields[name].check();
  const visible = result.error && (force || touched.has(name) || result.definite);
  setFieldError(name, visible ? result.error : null);
  return result;
}

function caretAfterDigits(text, count) {
  let position = 0;
  let seen = 0;
  while (position < text.length && seen < count) {
    if (/\d/.test(text[position])) seen += 1;
    position += 1;
  }
  return position;
}

function formatCardNumberInput() {
  const input = fields.number.input;
  const caret = input.selectionStart ?? input.value.length;
  const digitsBefore = check.digitsOf(input.value.slice(0, caret)).length;
  let digits = check.digitsOf(input.value);
  digits = digits.slice(0, check.maxCardDigits(digits));
  input.value = check.formatCardNumber(digits);
  if (document.activeElement === input) {
    const position = caretAfterDigits(input.value, digitsBefore);
    input.setSelectionRange(position, position);
  }
  const brand = $("card-brand");
  const found = check.cardNetwork(digits);
  brand.hidden = !found;
  brand.textContent = found ? check.NETWORKS[found].label : "";
  fields.cvv.input.maxLength = found ? check.NETWORKS[found].cvv : 4;
  fields.cvv.input.placeholder = found === "amex" ? "••••" : "•••";
}

function wireField(name, format) {
  const { input } = fields[name];
  input.addEventListener("input", (event) => {
    if (format) format(event);
    refresh(name);
    if (name === "number" && fields.cvv.input.value) refresh("cvv"); // the network sets the CVV's length
    hideFormError();
  });
  input.addEventListener("blur", () => {
    if (input.value.trim() !== "") touched.add(name);
    refresh(name);
  });
}

wireField("vpa");
wireField("number", formatCardNumberInput);
wireField("expiry", (event) => {
  const input = fields.expiry.input;
  input.value = check.formatExpiry(input.value, event.inputType === "deleteContentBackward");
});
wireField("cvv", () => {
  const input = fields.cvv.input;
  input.value = check.digitsOf(input.value).slice(0, input.maxLength > 0 ? input.maxLength : 4);
});
wireField("name");

// ---- methods ---------------------------------------------------------------------------------

const tabs = { upi: $("tab-upi"), card: $("tab-card") };

function setMethod(chosen) {
  method = chosen;
  for (const [name, tab] of Object.entries(tabs)) {
    const selected = name === chosen;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    $(`panel-${name}`).hidden = !selected;
  }
  hideFormError();
}

for (const [name, tab] of Object.entries(tabs)) {
  tab.addEventListener("click", () => setMethod(name));
  tab.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
    event.preventDefault();
    const next = name === "upi" ? "card" : "upi";
    setMethod(next);
    tabs[next].focus();
  });
}

// ---- paying ----------------------------------------------------------------------------------

function hideFormError() {
  $("form-error").hidden = true;
}

function formError(message) {
  const box = $("form-error");
  box.textContent = message;
  box.hidden = false;
}

function setBusy(value) {
  busy = value;
  $("pay-button").disabled = value;
}

function paymentBody() {
  if (method === "upi") return { order_id: order.id, method: "upi", vpa: fields.vpa.check().value };
  const expiry = fields.expiry.check().value;
  return {
    order_id: order.id,
    method: "card",
    card: {
      number: fields.number.check().value,
      expiry_month: expiry.month,
      expiry_year: expiry.year,
      cvv: fields.cvv.check().value,
      holder_name: fields.name.check().value,
    },
  };
}

function wait(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Create the payment, retrying the same attempt (same key) when no answer came or it is busy. */
async function createPayment(body, idempotencyKey) {
  for (let retry = 0; ; retry += 1) {
    try {
      return await api.createPayment(body, idempotencyKey);
    } catch (error) {
      const transient =
        error instanceof NetworkError ||
        (error instanceof ApiError && (error.status === 409 || error.status === 503));
      if (!transient || retry >= CREATE_RETRIES.length) throw error;
      await wait(CREATE_RETRIES[retry]);
    }
  }
}

function processing(title, text) {
  $("processing-title").textContent = title;
  $("processing-text").textContent = text;
  $("check-again").hidden = true;
  show("processing");
}

async function pay() {
  if (busy || !order) return;
  hideFormError();
  const names = METHOD_FIELDS[method];
  const invalid = names.filter((name) => refresh(name, true).error);
  if (invalid.length > 0) {
    for (const name of names) touched.add(name);
    fields[invalid[0]].input.focus();
    return;
  }
  const body = paymentBody();
  const fingerprint = JSON.stringify(body);
  if (!attempt || attempt.fingerprint !== fingerprint) attempt = { key: newIdempotencyKey(), fingerprint };
  setBusy(true);
  const startedAt = Date.now();
  if (method === "upi") {
    processing("Approve the payment in your UPI app", `We sent a payment request to ${body.vpa}. Open your UPI app to approve it.`);
  } else {
    processing("Confirming with your bank", "This usually takes a few seconds. Please keep this window open.");
  }
  let created;
  try {
    created = await createPayment(body, attempt.key);
  } catch (error) {
    setBusy(false);
    refused(error);
    return;
  }
  attempt = null; // answered: the next Pay is a new attempt
  const paidWith = method === "upi" ? `UPI · ${body.vpa}` : null;
  follower = followPayment({
    api,
    payment: created,
    notifier: created.notifier,
    onChannel: (channel) => {
      STATES.processing.dataset.channel = channel;
    },
    onSlow: () => {
      processing(
        "Your bank is taking longer than usual",
        "We are still waiting for the result. You will not be charged twice: check again in a moment.",
      );
      $("check-again").hidden = false;
    },
    onFinal: (settled) => {
      const remaining = Math.max(0, MIN_PROCESSING_MS - (Date.now() - startedAt));
      setTimeout(() => settle(settled, paidWith), remaining);
    },
  });
}

/** The API refused the payment (or could not be reached): back to the form, saying why. */
function refused(error) {
  if (error instanceof ApiError && error.code === "ORDER_ALREADY_PAID") {
    notice("This order is already paid", "There is nothing more to pay. Thank you!", { returnLink: true });
    return;
  }
  if (error instanceof ApiError && error.status === 404) {
    notice("Order not found", "This order no longer exists. Ask the merchant for a new payment link.");
    return;
  }
  show("form");
  if (error instanceof ApiError && error.status === 422 && API_FIELDS[error.field]) {
    const name = API_FIELDS[error.field];
    touched.add(name);
    setFieldError(name, error.message);
    fields[name].input.focus();
  } else if (error instanceof ApiError && error.status === 429) {
    formError(`Too many attempts. Please wait ${error.retryAfterS || 60} seconds and try again.`);
  } else if (error instanceof NetworkError) {
    formError("We could not reach the payment server. Check your connection and try again.");
  } else {
    formError(error.message || "Something went wrong. Please try again.");
  }
}

// What a payer is told, by the processor's error code (its descriptions are written for merchants).
const FAILURE_TEXT = {
  PAYMENT_DECLINED: "Your bank declined this payment.",
  ORDER_ALREADY_PAID: "This order was already paid by another payment.",
  default: "The payment could not be completed.",
};

function cardLabel(payment) {
  const networkName = payment.card_network ? check.NETWORKS[payment.card_network]?.label : "Card";
  return payment.card_last4 ? `${networkName || "Card"} •••• ${payment.card_last4}` : networkName || "Card";
}

function settle(payment, paidWith) {
  follower = null;
  setBusy(false);
  if (payment.status === "success") {
    $("success-text").textContent = `${formatAmount(payment.amount, payment.currency)} paid to ${order.merchant.name}.`;
    $("payment-id").textContent = payment.id;
    $("success-method").textContent = payment.method === "upi" ? paidWith || "UPI" : cardLabel(payment);
    $("success-date").textContent = new Date(payment.created_at).toLocaleString();
    showReturnLink($("success-return"), {
      paystream_payment_id: payment.id,
      paystream_order_id: payment.order_id,
      paystream_status: "success",
    });
    $("success-done").hidden = !parent.framed;
    $("amount-label").textContent = "Amount paid";
    show("success");
    parent.post({ type: "payment_success", paymentId: payment.id, orderId: payment.order_id, amount: payment.amount });
    return;
  }
  $("failure-text").textContent = FAILURE_TEXT[payment.error_code] || payment.error_description || FAILURE_TEXT.default;
  $("failure-reference").textContent = `Reference: ${payment.id}`;
  showReturnLink($("failure-return"), {
    paystream_payment_id: payment.id,
    paystream_order_id: payment.order_id,
    paystream_status: "failed",
  });
  if (!$("failure-return").hidden) $("failure-return").textContent = `Cancel and return to ${order.merchant.name}`;
  show("failure");
  parent.post({
    type: "payment_failed",
    error: {
      code: payment.error_code || "PAYMENT_FAILED",
      description: payment.error_description || "The payment could not be completed.",
      paymentId: payment.id,
    },
  });
}

STATES.form.addEventListener("submit", (event) => {
  event.preventDefault();
  pay();
});

$("retry-button").addEventListener("click", () => {
  fields.cvv.input.value = ""; // never kept between attempts
  setFieldError("cvv", null);
  touched.delete("cvv");
  show("form");
  fields[METHOD_FIELDS[method][0]].input.focus();
});

$("check-again").addEventListener("click", () => {
  $("check-again").hidden = true;
  $("processing-title").textContent = "Checking your payment";
  $("processing-text").textContent = "One moment, please.";
  if (follower) follower.checkAgain();
});

$("success-done").addEventListener("click", () => parent.post({ type: "close_requested" }));

// Escape inside the iframe never reaches the merchant's page: ask the SDK to close instead.
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && parent.framed) parent.post({ type: "close_requested" });
});

load();
