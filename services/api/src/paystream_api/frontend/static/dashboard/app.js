// What every dashboard page shares: the session, calls to the API, formatting, a safe DOM builder,
// the live connection to the notifier, and the shell (merchant name, sign-out).
//
// The pages call the merchant API's own endpoints (/api/v1/...) with the session cookie; writes
// carry the session's CSRF token. Every value from the API reaches the page as text (textContent),
// never as HTML.

const session = { info: null, fetchedAt: 0 };

export class ApiError extends Error {
  constructor(status, error) {
    super((error && error.description) || `request failed (${status})`);
    this.status = status;
    this.code = error && error.code;
    this.field = error && error.field;
  }
}

// ---- Session -----------------------------------------------------------------------------------

async function fetchSession() {
  const response = await fetch("/dashboard/session", { credentials: "same-origin", cache: "no-store" });
  const body = await response.json();
  if (!body.signed_in) {
    // The server answers the sign-in page at this same address while there is no session.
    location.reload();
    throw new ApiError(401, { description: "signed out" });
  }
  session.info = body;
  session.fetchedAt = Date.now();
  return body;
}

export async function loadSession() {
  return session.info || fetchSession();
}

/** A notifier token with at least two minutes left, fetched again when it has less. */
export async function notifierToken() {
  const lifetimeMs = session.info ? session.info.notifier.expires_in_s * 1000 : 0;
  if (!session.info || Date.now() - session.fetchedAt > lifetimeMs - 120_000) {
    await fetchSession();
  }
  return session.info.notifier.token;
}

// ---- API ---------------------------------------------------------------------------------------

export async function api(path, { method = "GET", body, idempotencyKey } = {}) {
  const info = await loadSession();
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = info.csrf_token;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
    cache: "no-store",
  });
  if (response.status === 401) {
    location.reload(); // the session ended: the sign-in page is served here now
    throw new ApiError(401, { description: "the session has ended" });
  }
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, data && data.error);
  return data;
}

export function newIdempotencyKey() {
  return crypto.randomUUID();
}

// ---- Formatting --------------------------------------------------------------------------------

const fractionDigits = new Map();

export function currencyDigits(currency) {
  if (!fractionDigits.has(currency)) {
    let digits = 2;
    try {
      digits = new Intl.NumberFormat("en-IN", { style: "currency", currency }).resolvedOptions()
        .maximumFractionDigits;
    } catch {
      digits = 2;
    }
    fractionDigits.set(currency, digits);
  }
  return fractionDigits.get(currency);
}

export function formatAmount(minor, currency = "INR") {
  const digits = currencyDigits(currency);
  const major = Number(minor) / 10 ** digits;
  try {
    return new Intl.NumberFormat("en-IN", { style: "currency", currency, minimumFractionDigits: digits }).format(major);
  } catch {
    return `${major.toFixed(digits)} ${currency}`;
  }
}

/** "12.50" in `currency` as an integer of minor units, or null when it is not an amount. */
export function parseAmount(text, currency = "INR") {
  const digits = currencyDigits(currency);
  const cleaned = String(text).replace(/[,\s]/g, "");
  const pattern = digits > 0 ? new RegExp(`^(\\d+)(?:\\.(\\d{0,${digits}}))?$`) : /^(\d+)$/;
  const match = pattern.exec(cleaned);
  if (!match) return null;
  const whole = match[1];
  const fraction = (match[2] || "").padEnd(digits, "0");
  const minor = Number(whole + fraction);
  return Number.isSafeInteger(minor) ? minor : null;
}

export function majorUnits(minor, currency = "INR") {
  const digits = currencyDigits(currency);
  if (digits === 0) return String(minor);
  const padded = String(minor).padStart(digits + 1, "0");
  return `${padded.slice(0, -digits)}.${padded.slice(-digits)}`;
}

const dateTime = new Intl.DateTimeFormat("en-GB", {
  day: "numeric",
  month: "short",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
});

export function formatTime(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "—" : dateTime.format(date);
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

export function formatPercent(rate) {
  return rate === null || rate === undefined ? "—" : `${(rate * 100).toFixed(rate === 1 ? 0 : 1)}%`;
}

export function formatCount(value) {
  return new Intl.NumberFormat("en-IN").format(value);
}

export function paymentMethod(payment) {
  if (payment.method === "upi") return payment.vpa ? `UPI · ${payment.vpa}` : "UPI";
  if (payment.method === "card") {
    const network = payment.card_network ? payment.card_network.toUpperCase() : "Card";
    return `${network} •••• ${payment.card_last4 || ""}`;
  }
  return payment.method;
}

// ---- DOM ---------------------------------------------------------------------------------------

/** `el("td", {class: "id", dataset: {label: "ID"}}, "pay_1")`: children are nodes or text. */
export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function $(testId, root = document) {
  return root.querySelector(`[data-test-id="${testId}"]`);
}

export function badge(status, extra = "") {
  return el("span", { class: `badge ${status} ${extra}`.trim(), dataset: { status } }, status);
}

export function emptyRow(columns, title, text, { compact = false } = {}) {
  return el(
    "tr",
    { class: "empty-row" },
    el(
      "td",
      { colspan: columns },
      el("div", { class: compact ? "empty compact" : "empty" }, el("div", { class: "empty-icon" }, "∅"), el("strong", {}, title), text),
    ),
  );
}

export function toast(message, kind = "info") {
  let area = document.querySelector(".toast-area");
  if (!area) {
    area = el("div", { class: "toast-area", role: "status", "aria-live": "polite" });
    document.body.append(area);
  }
  const item = el("div", { class: `toast ${kind}` }, message);
  area.append(item);
  setTimeout(() => item.remove(), 2500);
}

export async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
    if (button) {
      const label = button.textContent;
      button.textContent = "Copied";
      setTimeout(() => (button.textContent = label), 1200);
    }
  } catch {
    toast("Copy is not allowed here; select the text instead", "error");
  }
}

/** Pager controls in `root` (prev/next buttons and a range label) for `{offset, limit, total}`. */
export function renderPager(root, { offset, limit, total }, onPage) {
  const label = root.querySelector(".pager-label");
  const prev = root.querySelector("[data-pager=prev]");
  const next = root.querySelector("[data-pager=next]");
  label.textContent = total === 0 ? "No results" : `${offset + 1}–${Math.min(offset + limit, total)} of ${formatCount(total)}`;
  prev.disabled = offset === 0;
  next.disabled = offset + limit >= total;
  prev.onclick = () => onPage(Math.max(0, offset - limit));
  next.onclick = () => onPage(offset + limit);
}

/** Tabs of `aria-pressed` buttons with `data-value`; calls `onChange(value)`. */
export function bindTabs(root, onChange) {
  root.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-value]");
    if (!button) return;
    for (const other of root.querySelectorAll("button[data-value]")) {
      other.setAttribute("aria-pressed", String(other === button));
    }
    onChange(button.dataset.value);
  });
}

export function debounce(fn, waitMs) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), waitMs);
  };
}

// ---- Live updates ------------------------------------------------------------------------------

/**
 * Connects to the notifier with the dashboard's token (merchant scope) and calls `handlers[event]`.
 * The token is fetched again before it expires; the notifier closes a socket whose token expired,
 * and this reconnects it with a fresh one, resuming from the last event seen.
 */
export async function connectLive(handlers) {
  const indicator = $("live-status");
  const show = (state, text) => {
    if (!indicator) return;
    indicator.dataset.state = state;
    indicator.textContent = text;
  };
  const info = await loadSession();
  if (typeof window.io !== "function") {
    show("offline", "Live updates unavailable");
    return null;
  }
  // The last packet seen (its event id and name): a reconnect's catch-up resumes after it.
  let lastEventId = null;
  let lastEventName = null;
  show("connecting", "Connecting…");
  const socket = window.io(info.notifier.url, {
    auth: (callback) => {
      notifierToken()
        .then((token) => callback(lastEventId ? { token, lastEventId, lastEventName } : { token }))
        .catch(() => callback({}));
    },
    reconnectionDelayMax: 10_000,
  });
  socket.on("connect", () => show("connected", "Live"));
  socket.on("disconnect", (reason) => {
    show("connecting", "Reconnecting…");
    if (reason === "io server disconnect") setTimeout(() => socket.connect(), 500);
  });
  socket.on("connect_error", () => show("offline", "Offline — retrying"));
  for (const [event, handler] of Object.entries(handlers)) {
    socket.on(event, (payload) => {
      if (payload && payload.eventId) [lastEventId, lastEventName] = [payload.eventId, event];
      handler(payload);
    });
  }
  // Keep a fresh token in hand for the next reconnect.
  setInterval(() => notifierToken().catch(() => {}), 60_000);
  return socket;
}

// ---- Shell -------------------------------------------------------------------------------------

export async function initShell() {
  // The sign-out button works from the first moment, before the session's details have arrived.
  const session = loadSession();
  const signOut = $("logout-button");
  if (signOut) {
    signOut.addEventListener("click", async () => {
      signOut.disabled = true;
      // Leave the page only once the server has revoked the session: reloading after a failed
      // revoke would show the dashboard again, still signed in, as if nothing had been clicked.
      let revoked = false;
      try {
        const { csrf_token: csrfToken } = await session;
        const response = await fetch("/dashboard/session", {
          method: "DELETE",
          headers: { "X-CSRF-Token": csrfToken },
          credentials: "same-origin",
        });
        revoked = response.ok;
      } catch {
        revoked = false;
      }
      if (revoked) {
        location.assign("/dashboard");
        return;
      }
      signOut.disabled = false;
      toast("Sign-out failed: you are still signed in. Try again.", "error");
    });
  }
  const info = await session;
  const name = document.querySelector(".merchant-name");
  const key = document.querySelector(".merchant-key");
  if (name) name.textContent = info.merchant.name;
  if (key) key.textContent = info.merchant.key;
  const mode = document.querySelector(".mode-badge");
  if (mode) mode.hidden = !info.test_mode;
  return info;
}
