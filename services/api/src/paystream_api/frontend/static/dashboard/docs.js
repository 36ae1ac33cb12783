// Docs (/dashboard/docs): curl for every merchant endpoint with the signed-in merchant's key filled
// in (the secret stays with the merchant: $PAYSTREAM_SECRET), the SDK snippet, the webhook
// verification snippets, fetched from the same files the README shows, and the webhook events
// (events.js).

import { $, api, bindTabs, copyText, el, initShell } from "./app.js";
import { renderEventCatalogue } from "./events.js";

const ORDER = "order_XXXXXXXXXXXXXXXX";
const PAYMENT = "pay_XXXXXXXXXXXXXXXX";
const REFUND = "rfnd_XXXXXXXXXXXXXXXX";
const DELIVERY = "msg_XXXXXXXXXXXXXXXX";

const SECTIONS = [
  {
    title: "Account",
    endpoints: [["GET", "/api/v1/merchants/me", "Your account: id, name, email, key (never a secret)."]],
  },
  {
    title: "Orders",
    endpoints: [
      ["POST", "/api/v1/orders", "Create an order (amounts in paise).", { amount: 50000, currency: "INR", receipt: "rcpt_1001" }, true],
      ["GET", `/api/v1/orders/${ORDER}`, "Fetch an order."],
    ],
  },
  {
    title: "Payments",
    endpoints: [
      ["POST", "/api/v1/payments", "Create a UPI payment: 201 at once, status pending; it settles in the background.", { order_id: ORDER, amount: 50000, currency: "INR", method: "upi", vpa: "asha@okbank" }, true],
      ["POST", "/api/v1/payments", "Create a card payment (only the network and last 4 digits are stored).", { order_id: ORDER, amount: 50000, currency: "INR", method: "card", card: { number: "4111111111111111", expiry_month: 12, expiry_year: 2030, cvv: "123", holder_name: "Asha Rao" } }, true],
      ["GET", `/api/v1/payments/${PAYMENT}`, "Fetch a payment."],
      ["GET", "/api/v1/payments?limit=10&offset=0&status=success", "List payments, newest first, with the total."],
      ["GET", `/api/v1/payments/${PAYMENT}/events`, "A payment's events, oldest first (its timeline)."],
      ["POST", `/api/v1/payments/${PAYMENT}/capture`, "Capture a successful payment."],
    ],
  },
  {
    title: "Refunds",
    endpoints: [
      ["POST", `/api/v1/payments/${PAYMENT}/refunds`, "Refund all or part of a successful payment.", { amount: 10000, reason: "Customer request" }, true],
      ["GET", `/api/v1/payments/${PAYMENT}/refunds`, "A payment's refunds."],
      ["GET", `/api/v1/refunds/${REFUND}`, "Fetch a refund."],
    ],
  },
  {
    title: "Webhooks",
    endpoints: [
      ["GET", "/api/v1/webhooks/config", "Your endpoint URL, events and signing secret."],
      ["PUT", "/api/v1/webhooks/config", "Set the endpoint (events default to all).", { url: "https://example.com/webhooks/paystream", events: ["*"], enabled: true }],
      ["POST", "/api/v1/webhooks/config/rotate-secret", "A new secret; the old one keeps signing for 24 hours."],
      ["POST", "/api/v1/webhooks/test", "Send a webhook.test event to your endpoint now."],
      ["GET", "/api/v1/webhooks?limit=10&offset=0&status=failed", "Delivery logs, newest first."],
      ["POST", `/api/v1/webhooks/${DELIVERY}/retry`, "One more attempt of a delivery, now."],
      ["GET", "/api/v1/event-types", "Every webhook event: its data's JSON Schema and a sample (no key needed).", null, false, true],
    ],
  },
  {
    title: "Dashboard figures",
    endpoints: [
      ["GET", "/api/v1/dashboard/payments/summary", "Totals and payments per minute over the last hour."],
      ["GET", "/api/v1/dashboard/webhooks/summary", "Webhook delivery success rate."],
      ["GET", "/api/v1/dashboard/streams", "The event bus: lag, pending, dead letters, outbox backlog."],
    ],
  },
];

function shellQuote(text) {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

function curl(method, path, key, body, idempotent, isPublic) {
  const lines = [`curl -s${method === "GET" ? "" : ` -X ${method}`} "$PAYSTREAM_API${path}"`];
  if (!isPublic) lines.push(`-H 'X-Api-Key: ${key}' -H "X-Api-Secret: $PAYSTREAM_SECRET"`);
  if (idempotent) lines.push(`-H "Idempotency-Key: $(uuidgen)"`);
  if (body) {
    lines.push("-H 'Content-Type: application/json'");
    lines.push(`-d ${shellQuote(JSON.stringify(body))}`);
  }
  return lines.join(" \\\n  ");
}

function codeBlock(text, testId) {
  const pre = el("pre", { class: "block", "data-test-id": testId }, text);
  const copy = el("button", { type: "button", class: "btn small copy" }, "Copy");
  copy.addEventListener("click", () => copyText(pre.textContent, copy));
  return el("div", { class: "code-wrap" }, pre, copy);
}

function addCopyButton(pre) {
  const copy = el("button", { type: "button", class: "btn small copy" }, "Copy");
  copy.addEventListener("click", () => copyText(pre.textContent, copy));
  pre.parentElement.append(copy);
}

async function showSnippet(name) {
  const pre = $("docs-snippet");
  const response = await fetch(`/dashboard/snippets/${name}`, { credentials: "same-origin" });
  pre.textContent = response.ok ? await response.text() : "The snippet could not be loaded.";
}

async function main() {
  const info = await initShell();
  const origin = location.origin;
  const key = info.merchant.key;
  $("docs-base-url").textContent = origin;
  $("docs-api-key").textContent = key;
  $("docs-setup").textContent = [
    `export PAYSTREAM_API=${shellQuote(origin)}`,
    "export PAYSTREAM_SECRET='…'   # your API secret: never shown here",
  ].join("\n");
  addCopyButton($("docs-setup"));
  let index = 0;
  // Collapsed groups keep the page short; the account and payments start open.
  const sections = SECTIONS.map((section) =>
    el(
      "details",
      { class: "doc-group", open: ["Account", "Payments"].includes(section.title), "data-test-id": `docs-group-${section.title.toLowerCase().replace(/\s+/g, "-")}` },
      el("summary", {}, section.title, el("span", { class: "help" }, `${section.endpoints.length} endpoint${section.endpoints.length > 1 ? "s" : ""}`)),
      el(
        "div",
        { class: "doc-list" },
        section.endpoints.map(([method, path, text, body, idempotent, isPublic]) => {
          index += 1;
          return el(
            "div",
            { class: "doc-section" },
            el("div", { class: "doc-endpoint" }, el("span", { class: `method ${method.toLowerCase()}` }, method), el("code", {}, path.split("?")[0]), el("span", { class: "help" }, text)),
            codeBlock(curl(method, path, key, body, idempotent, isPublic), `docs-curl-${index}`),
          );
        }),
      ),
    ),
  );
  $("docs-endpoints").replaceChildren(...sections);
  $("docs-sdk").textContent = `<script src="${origin}/checkout.js"></script>
<button id="pay">Pay ₹500</button>
<script>
  const checkout = new PaymentGateway({
    key: "${key}",              // your API key: public, safe in a page
    orderId: "${ORDER}",  // from POST /api/v1/orders, on your server
    onSuccess: (result) => { /* result.paymentId: confirm it on your server */ },
    onFailure: (result) => { /* result.error */ },
    onClose: () => {},
  });
  document.getElementById("pay").addEventListener("click", () => checkout.open());
</script>`;
  addCopyButton($("docs-sdk"));
  addCopyButton($("docs-snippet"));
  bindTabs($("snippet-tabs"), showSnippet);
  $("docs-events-curl").textContent = `curl -s ${origin}/api/v1/event-types`;
  await Promise.all([showSnippet("verify_webhook.py"), showEvents()]);
}

async function showEvents() {
  const root = $("docs-events");
  try {
    // A link to /dashboard/docs#event-payment.success opens that event.
    const wanted = decodeURIComponent(location.hash.replace(/^#event-/, ""));
    renderEventCatalogue(root, await api("/api/v1/event-types"), { open: [wanted] });
  } catch (error) {
    root.replaceChildren(el("div", { class: "alert error" }, `The event catalogue could not be loaded: ${error.message}`));
  }
}

main();
