// The demo shop: "Buy now" asks the shop's backend (POST /demo/orders, standing in for a merchant's
// server) for an order, then opens Paystream Checkout on it with the SDK and logs its callbacks.

const UNIT_PRICE = 34900; // paise
const CURRENCY = "INR";
const MAX_QUANTITY = 9;

const $ = (id) => document.getElementById(id);
let quantity = 1;

const money = new Intl.NumberFormat(undefined, { style: "currency", currency: CURRENCY });
const format = (minor) => money.format(minor / 100);

function render() {
  $("unit-price").textContent = format(UNIT_PRICE);
  $("quantity").textContent = String(quantity);
  $("buy").textContent = `Buy now · ${format(UNIT_PRICE * quantity)}`;
  $("less").disabled = quantity <= 1;
  $("more").disabled = quantity >= MAX_QUANTITY;
}

function log(name, detail) {
  const item = document.createElement("li");
  item.dataset.callback = name;
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  const label = document.createElement("strong");
  label.textContent = name;
  item.append(time, label);
  if (detail !== undefined) {
    const body = document.createElement("code");
    body.textContent = JSON.stringify(detail);
    item.append(body);
  }
  $("log").prepend(item);
  $("log-empty").hidden = true;
}

function showResult(text, kind) {
  const result = $("result");
  result.textContent = text;
  result.dataset.kind = kind;
  result.hidden = false;
}

function showError(text) {
  const box = $("demo-error");
  box.textContent = text;
  box.hidden = !text;
}

function receiptNumber() {
  return `TM-${String(Math.floor(Math.random() * 90000) + 10000)}`;
}

async function createOrder(extra = {}) {
  const response = await fetch("/demo/orders", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ amount: UNIT_PRICE * quantity, receipt: receiptNumber(), ...extra }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error((body && body.error && body.error.description) || `HTTP ${response.status}`);
  return body;
}

async function buy() {
  showError("");
  $("buy").disabled = true;
  let order;
  try {
    order = await createOrder();
  } catch (error) {
    showError(`Could not create the order: ${error.message}`);
    $("buy").disabled = false;
    return;
  }
  $("buy").disabled = false;
  log("order created", { orderId: order.order_id, amount: order.amount });
  const checkout = new window.PaymentGateway({
    key: order.key,
    orderId: order.order_id,
    onSuccess: (result) => {
      log("onSuccess", result);
      showResult(`Thank you! Payment ${result.paymentId} received.`, "success");
    },
    onFailure: (error) => {
      log("onFailure", error);
      showResult(`The payment failed: ${error.description || error.code}.`, "failure");
    },
    onClose: () => log("onClose"),
  });
  checkout.open();
}

async function payHosted() {
  showError("");
  try {
    const returnUrl = new URL("/demo", window.location.origin).href;
    const order = await createOrder({ return_url: returnUrl });
    const url = new URL("/checkout", window.location.origin);
    url.searchParams.set("order_id", order.order_id);
    url.searchParams.set("key", order.key);
    window.location.assign(url.href);
  } catch (error) {
    showError(`Could not create the order: ${error.message}`);
  }
}

function returnedFromHostedCheckout() {
  const params = new URLSearchParams(window.location.search);
  const status = params.get("paystream_status");
  if (!status) return;
  const paymentId = params.get("paystream_payment_id") || "";
  log("returned from the hosted checkout", { status, paymentId, orderId: params.get("paystream_order_id") });
  if (status === "success") showResult(`Thank you! Payment ${paymentId} received.`, "success");
  else showResult("The payment did not go through.", "failure");
}

$("snippet").textContent = `<script src="${window.location.origin}/checkout.js"></script>
<script>
  const checkout = new PaymentGateway({
    key: "key_test_abc123",
    orderId: order.id, // from your backend: POST /api/v1/orders
    onSuccess: ({ paymentId, orderId, amount }) => { /* confirm on your server */ },
    onFailure: (error) => { /* error.code, error.description */ },
    onClose: () => {},
  });
  checkout.open();
</script>`;

$("less").addEventListener("click", () => {
  quantity = Math.max(1, quantity - 1);
  render();
});
$("more").addEventListener("click", () => {
  quantity = Math.min(MAX_QUANTITY, quantity + 1);
  render();
});
$("buy").addEventListener("click", buy);
$("hosted").addEventListener("click", payHosted);
$("clear-log").addEventListener("click", () => {
  $("log").replaceChildren();
  $("log-empty").hidden = false;
});

render();
returnedFromHostedCheckout();
