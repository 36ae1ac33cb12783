// How a webhook endpoint is shown on both webhook pages: its state (enabled, failing, disabled by
// the merchant, disabled by Paystream), its events filter and rate limit, and its address.

import { el, formatTime } from "./app.js";

// The API's reason when the merchant disabled an endpoint (paystream_api.webhook_api.store
// .DISABLED_BY_MERCHANT); any other reason is the dispatcher's (a 410 Gone, or every attempt
// failing for days), and the page makes that one stand out.
const DISABLED_BY_MERCHANT = "disabled by the merchant";
const ALL_EVENTS = "*";
const SHOWN_FILTER_ENTRIES = 3;

export function endpointPath(endpoint) {
  return `/dashboard/webhooks/${encodeURIComponent(endpoint.id)}`;
}

/** "enabled", "failing" (enabled, its last attempts failed), "disabled" (by the merchant) or "auto-disabled". */
export function endpointState(endpoint) {
  if (endpoint.enabled) return endpoint.failing_since ? "failing" : "enabled";
  return endpoint.disabled_reason && endpoint.disabled_reason !== DISABLED_BY_MERCHANT ? "auto-disabled" : "disabled";
}

export function isAutoDisabled(endpoint) {
  return endpointState(endpoint) === "auto-disabled";
}

const STATE_BADGES = {
  enabled: ["success", "enabled"],
  failing: ["pending", "failing"],
  disabled: ["", "disabled"],
  "auto-disabled": ["failed", "disabled by Paystream"],
};

export function stateBadge(endpoint, extra = "") {
  const state = endpointState(endpoint);
  const [kind, label] = STATE_BADGES[state];
  return el("span", { class: `badge ${kind} ${extra}`.trim(), dataset: { state } }, label);
}

/** One line under the badge: since when it fails, or why and when it was disabled. */
export function stateNote(endpoint) {
  switch (endpointState(endpoint)) {
    case "failing":
      return `Every attempt failed since ${formatTime(endpoint.failing_since)}`;
    case "disabled":
      return `By you, ${formatTime(endpoint.disabled_at)}`;
    case "auto-disabled":
      return `${capitalize(endpoint.disabled_reason)} · ${formatTime(endpoint.disabled_at)}`;
    default:
      return "";
  }
}

export function defaultBadge() {
  return el("span", { class: "badge info plain", title: "The endpoint /api/v1/webhooks/config manages; signed with your account's webhook secret" }, "Default");
}

export function isAllEvents(events) {
  return events.length === 1 && events[0] === ALL_EVENTS;
}

/** The filter as code chips: "All events", or its first entries and "+N more". */
export function filterChips(events) {
  if (isAllEvents(events)) return el("span", { class: "chips" }, el("span", { class: "chip all" }, "All events"));
  const shown = events.slice(0, SHOWN_FILTER_ENTRIES).map((entry) => el("code", { class: "chip" }, entry));
  const more = events.length - shown.length;
  return el(
    "span",
    { class: "chips", title: events.join(", ") },
    shown,
    more > 0 ? el("span", { class: "chip more" }, `+${more} more`) : null,
  );
}

export function rateLimitText(endpoint) {
  return endpoint.rate_limit_per_s ? `${endpoint.rate_limit_per_s} / s` : "No limit";
}

/** The URL without its scheme, for tight places (the full URL stays in the title). */
export function shortUrl(url) {
  return url.replace(/^https?:\/\//, "");
}

export function capitalize(text) {
  return text ? text[0].toUpperCase() + text.slice(1) : "";
}
