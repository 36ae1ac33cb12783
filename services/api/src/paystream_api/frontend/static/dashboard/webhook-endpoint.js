// A webhook endpoint's page (/dashboard/webhooks/<id>): its state (with a banner when Paystream
// disabled it), its settings form, disable / enable, delete, a test send, the signing secret and
// its rotation, recovery of failed deliveries in a window, and its own delivery log.

import { $, ApiError, api, connectLive, copyText, debounce, el, formatTime, initShell, toast } from "./app.js";
import { deliveryLog } from "./delivery-logs.js";
import { endpointForm } from "./endpoint-form.js";
import { capitalize, defaultBadge, endpointState, rateLimitText, stateBadge } from "./endpoint-state.js";

const endpointId = decodeURIComponent(location.pathname.split("/").filter(Boolean).pop() || "");
const path = `/api/v1/webhook-endpoints/${encodeURIComponent(endpointId)}`;
const MASK = "whsec_••••••••••••••••";
const state = { endpoint: null, revealed: false, newSecret: null, gone: false };
let form = null;
let logs = null;

// ---- Rendering ---------------------------------------------------------------------------------

function detail(label, value, testId) {
  return [el("dt", {}, label), el("dd", testId ? { "data-test-id": testId } : {}, value)];
}

function enableButton(testId) {
  const button = el("button", { type: "button", class: "btn small primary", "data-test-id": testId }, "Enable endpoint");
  button.addEventListener("click", () => setEnabled(true));
  return button;
}

/** What the merchant must know first: Paystream disabled it, the merchant did, or it is failing. */
function renderBanner(endpoint) {
  const box = $("endpoint-banner");
  const kind = endpointState(endpoint);
  let content = null;
  if (kind === "auto-disabled") {
    content = el(
      "div",
      { class: "alert error banner", role: "alert", "data-test-id": "auto-disabled-banner" },
      el("div", { class: "banner-mark", "aria-hidden": "true" }, "!"),
      el(
        "div",
        { class: "banner-body" },
        el("div", { class: "banner-title" }, "Paystream disabled this endpoint"),
        el("div", { "data-test-id": "auto-disabled-reason" }, `${capitalize(endpoint.disabled_reason)}, so it was disabled on ${formatTime(endpoint.disabled_at)}.`),
        el("div", {}, "Nothing is sent to it now, and the deliveries that were waiting for a retry are marked failed. Fix your receiver, enable the endpoint, then recover the failed deliveries."),
      ),
      enableButton("banner-enable-button"),
    );
  } else if (kind === "disabled") {
    content = el(
      "div",
      { class: "alert neutral banner", role: "status", "data-test-id": "disabled-note" },
      el("div", { class: "banner-body" }, el("div", { class: "banner-title" }, "Disabled"), `You disabled this endpoint on ${formatTime(endpoint.disabled_at)}. Nothing is sent to it until you enable it again.`),
      enableButton("note-enable-button"),
    );
  } else if (kind === "failing") {
    content = el(
      "div",
      { class: "alert warn banner", role: "status", "data-test-id": "failing-note" },
      el(
        "div",
        { class: "banner-body" },
        el("div", { class: "banner-title" }, `Every attempt has failed since ${formatTime(endpoint.failing_since)}`),
        "Paystream keeps retrying, and disables an endpoint whose every attempt keeps failing for days. Check the responses in the delivery log below.",
      ),
    );
  }
  box.replaceChildren(...(content ? [content] : []));
  box.hidden = !content;
}

function renderSecret() {
  const { endpoint } = state;
  $("webhook-secret").textContent = state.revealed ? endpoint.secret : MASK;
  $("reveal-secret-button").textContent = state.revealed ? "Hide" : "Reveal";
  $("previous-secret-note").textContent = endpoint.previous_secret_expires_at
    ? `The previous secret also signs deliveries until ${formatTime(endpoint.previous_secret_expires_at)}.`
    : endpoint.is_default
      ? "The default endpoint is signed with your account's webhook secret (X-Webhook-Signature and webhook-signature)."
      : "Every delivery to this endpoint is signed with its own secret (X-Webhook-Signature and webhook-signature).";
  $("new-secret-box").hidden = !state.newSecret;
  $("new-secret").textContent = state.newSecret || "";
}

function renderEndpoint(endpoint) {
  state.endpoint = endpoint;
  document.title = `${endpoint.url} · Webhooks · Paystream Dashboard`;
  $("endpoint-id").textContent = endpoint.id;
  $("endpoint-url").textContent = endpoint.url;
  $("endpoint-badges").replaceChildren(stateBadge(endpoint, "large"), endpoint.is_default ? defaultBadge() : "");
  $("endpoint-description").textContent = endpoint.description || "No description";
  $("endpoint-description").classList.toggle("faint", !endpoint.description);
  $("endpoint-updated").textContent = `Updated ${formatTime(endpoint.updated_at)}`;
  renderBanner(endpoint);
  const toggle = $("toggle-enabled-button");
  toggle.textContent = endpoint.enabled ? "Disable" : "Enable";
  toggle.classList.toggle("primary", !endpoint.enabled);
  const test = $("send-test-button");
  test.disabled = !endpoint.enabled;
  test.title = endpoint.enabled ? "" : "Enable the endpoint to send it a test";
  $("recover-button").disabled = !endpoint.enabled;
  $("recover-disabled-note").hidden = endpoint.enabled;
  const headers = Object.keys(endpoint.headers);
  $("endpoint-details").replaceChildren(
    ...detail("ID", el("code", {}, endpoint.id)),
    ...detail("Created", formatTime(endpoint.created_at)),
    ...detail("Rate limit", rateLimitText(endpoint), "endpoint-rate-limit"),
    ...detail("Custom headers", headers.length ? headers.map((name) => el("code", { class: "chip" }, name)) : "None", "endpoint-header-names"),
    ...detail("Failing since", formatTime(endpoint.failing_since), "endpoint-failing-since"),
    ...detail("Disabled", endpoint.enabled ? "—" : `${formatTime(endpoint.disabled_at)} · ${endpoint.disabled_reason}`, "endpoint-disabled"),
  );
  renderSecret();
}

function showPageError(message) {
  const box = $("endpoint-page-error");
  box.replaceChildren(message, " ", el("a", { href: "/dashboard/webhooks" }, "Back to webhooks"));
  box.hidden = false;
  $("endpoint-page").hidden = true;
  $("endpoint-url").textContent = "Endpoint not found";
  $("endpoint-id").textContent = endpointId;
}

async function loadEndpoint() {
  try {
    renderEndpoint(await api(path));
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      state.gone = true;
      showPageError("No webhook endpoint here: it may have been deleted.");
    } else {
      toast(`The endpoint could not be loaded: ${error.message}`, "error");
    }
    return false;
  }
}

// ---- Actions -----------------------------------------------------------------------------------

async function setEnabled(enabled) {
  const buttons = [$("toggle-enabled-button"), ...$("endpoint-banner").querySelectorAll("button")];
  for (const button of buttons) button.disabled = true;
  try {
    renderEndpoint(await api(path, { method: "PATCH", body: { enabled } }));
    toast(enabled ? "Endpoint enabled" : "Endpoint disabled");
    logs.load();
  } catch (error) {
    toast(error.message, "error");
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

function bindToolbar() {
  $("toggle-enabled-button").addEventListener("click", () => {
    if (state.endpoint.enabled) $("disable-confirm").hidden = false;
    else setEnabled(true);
  });
  $("disable-cancel-button").addEventListener("click", () => ($("disable-confirm").hidden = true));
  $("disable-confirm-button").addEventListener("click", () => {
    $("disable-confirm").hidden = true;
    setEnabled(false);
  });
  $("delete-endpoint-button").addEventListener("click", () => ($("delete-confirm").hidden = false));
  $("delete-cancel-button").addEventListener("click", () => ($("delete-confirm").hidden = true));
  $("delete-confirm-button").addEventListener("click", async (event) => {
    event.currentTarget.disabled = true;
    try {
      await api(path, { method: "DELETE" });
      location.assign("/dashboard/webhooks");
    } catch (error) {
      toast(error.message, "error");
      event.currentTarget.disabled = false;
    }
  });
  $("send-test-button").addEventListener("click", async () => {
    const button = $("send-test-button");
    button.disabled = true;
    try {
      const delivery = await api(`${path}/test`, { method: "POST" });
      toast("Test webhook sent");
      logs.showNewest();
      await logs.load();
      logs.follow(delivery.id, delivery.attempts);
    } catch (error) {
      toast(error.message, "error");
    } finally {
      button.disabled = !state.endpoint.enabled;
    }
  });
}

function bindSecret() {
  $("reveal-secret-button").addEventListener("click", () => {
    state.revealed = !state.revealed;
    renderSecret();
  });
  $("copy-secret-button").addEventListener("click", (event) => copyText(state.endpoint.secret, event.currentTarget));
  $("copy-new-secret-button").addEventListener("click", (event) => copyText(state.newSecret, event.currentTarget));
  $("new-secret-done-button").addEventListener("click", () => {
    state.newSecret = null;
    renderSecret();
  });
  $("rotate-secret-button").addEventListener("click", () => ($("rotate-confirm").hidden = false));
  $("rotate-cancel-button").addEventListener("click", () => ($("rotate-confirm").hidden = true));
  $("rotate-confirm-button").addEventListener("click", async () => {
    $("rotate-confirm").hidden = true;
    try {
      const endpoint = await api(`${path}/rotate-secret`, { method: "POST" });
      state.newSecret = endpoint.secret;
      state.revealed = false;
      renderEndpoint(endpoint);
      toast("Secret rotated: deploy the new one within 24 hours");
    } catch (error) {
      toast(error.message, "error");
    }
  });
}

// ---- Recovery ----------------------------------------------------------------------------------

/** A Date as a datetime-local input's value (the browser's time zone, to the minute). */
function localInput(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function zoneName() {
  const minutes = -new Date().getTimezoneOffset();
  const sign = minutes < 0 ? "−" : "+";
  const abs = Math.abs(minutes);
  return `UTC${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}

function recoverMessage(kind, text) {
  const box = $("recover-message");
  box.className = `alert ${kind}`;
  box.textContent = text;
  box.hidden = !text;
}

function recoverError(field, text) {
  const error = $(`recover-${field}-error`);
  error.textContent = text;
  error.hidden = false;
  $(`recover-${field}-input`).classList.add("invalid");
  $(`recover-${field}-input`).focus();
}

function bindRecover() {
  const since = $("recover-since-input");
  const until = $("recover-until-input");
  since.value = localInput(new Date(Date.now() - 24 * 3600_000));
  $("recover-zone").textContent = `Times are in your time zone (${zoneName()}). Without an end, the window runs up to now.`;
  for (const preset of document.querySelectorAll(".presets [data-hours]")) {
    preset.addEventListener("click", () => {
      since.value = localInput(new Date(Date.now() - Number(preset.dataset.hours) * 3600_000));
      until.value = "";
    });
  }
  $("recover-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    for (const field of ["since", "until"]) {
      $(`recover-${field}-error`).hidden = true;
      $(`recover-${field}-input`).classList.remove("invalid");
    }
    recoverMessage("", "");
    if (!since.value) {
      recoverError("since", "Choose where the window starts.");
      return;
    }
    const body = { since: new Date(since.value).toISOString() };
    if (until.value) body.until = new Date(until.value).toISOString();
    const button = $("recover-button");
    button.disabled = true;
    try {
      const answer = await api(`${path}/recover`, { method: "POST", body });
      const count = answer.recovering;
      recoverMessage(
        count ? "ok" : "info",
        count
          ? `Re-sending ${count} failed ${count === 1 ? "delivery" : "deliveries"}, at most ${answer.pace_per_s} a second.`
          : "No failed deliveries were created in that window: nothing to re-send.",
      );
      if (count) {
        logs.showNewest();
        logs.pulse(Math.min(30, Math.ceil(count / answer.pace_per_s) + 5));
      }
    } catch (error) {
      if (error instanceof ApiError && (error.field === "since" || error.field === "until")) recoverError(error.field, error.message);
      else recoverMessage("error", error.message);
    } finally {
      button.disabled = !state.endpoint.enabled;
    }
  });
}

// ---- Page --------------------------------------------------------------------------------------

async function main() {
  await initShell();
  let eventTypes = [];
  try {
    eventTypes = (await api("/api/v1/dashboard/webhooks/summary")).event_types;
  } catch {
    eventTypes = [];
  }
  if (!(await loadEndpoint())) return;
  $("endpoint-page").hidden = false;
  form = endpointForm($("endpoint-form"), {
    eventTypes,
    idPrefix: "edit-endpoint",
    submitLabel: "Save changes",
    onSubmit: async (fields) => {
      const endpoint = await api(path, { method: "PATCH", body: fields });
      renderEndpoint(endpoint);
      form.setEndpoint(endpoint);
      form.message("ok", "Changes saved.");
    },
  });
  form.setEndpoint(state.endpoint);
  logs = deliveryLog($("webhook-logs-card"), {
    endpointId,
    retryBlocked: () => (state.endpoint.enabled ? null : "The endpoint is disabled: enable it to retry"),
    empty: () => ["No deliveries yet", "Events this endpoint subscribes to appear here. Send a test webhook to see one now."],
    onSettled: loadEndpoint,
  });
  bindToolbar();
  bindSecret();
  bindRecover();
  await logs.load();
  const refresh = debounce(() => logs.load(), 1500);
  await connectLive({ "payment:status-update": refresh, "refund:status-update": refresh });
  // The endpoint changes state on its own (failing, disabled by a dispatcher); the form is left as
  // the merchant is editing it.
  const poll = setInterval(async () => {
    if (await loadEndpoint()) logs.load();
    else if (state.gone) clearInterval(poll);
  }, 5000);
}

main();
