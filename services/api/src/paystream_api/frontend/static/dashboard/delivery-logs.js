// A delivery log card: the table of deliveries (newest first) with a status filter, paging,
// details and Retry. The Webhooks page shows every endpoint's; an endpoint's page only its own.

import { $, api, badge, bindTabs, el, emptyRow, formatTime, renderPager, toast } from "./app.js";

const PAGE_SIZE = 10;

function responseText(delivery) {
  if (delivery.response_code) return `HTTP ${delivery.response_code}`;
  if (delivery.error) return delivery.error.length > 40 ? `${delivery.error.slice(0, 40)}…` : delivery.error;
  return "—";
}

/**
 * `card` holds the `webhook-logs-table`, its pager and its `webhook-filter` tabs. Options:
 * `endpointId` keeps to one endpoint's deliveries; `endpointCell(delivery)` says under the event
 * which endpoint it went to; `retryBlocked(delivery)` says why Retry cannot work now (or
 * null); `empty()` is the [title, text] of an empty log; `onSettled()` runs once a followed
 * delivery's attempt is in.
 */
export function deliveryLog(card, { endpointId = null, endpointCell = null, retryBlocked = () => null, empty, onSettled = () => {} }) {
  const table = $("webhook-logs-table", card);
  const columns = table.querySelectorAll("thead th").length;
  const state = { status: "", offset: 0, open: new Set() };
  let ticket = 0;

  function detailsRow(delivery) {
    return el(
      "tr",
      { class: "details", "data-test-id": `webhook-details-${delivery.id}` },
      el(
        "td",
        { colspan: columns },
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

  function rows(delivery) {
    const toggle = el("button", { type: "button", class: "btn small link", "data-test-id": `webhook-toggle-${delivery.id}` }, state.open.has(delivery.id) ? "Hide" : "Details");
    const blocked = retryBlocked(delivery);
    const retry = el("button", { type: "button", class: "btn small", "data-test-id": `retry-webhook-${delivery.id}`, disabled: Boolean(blocked), title: blocked || undefined }, "Retry");
    retry.addEventListener("click", async () => {
      retry.disabled = true;
      try {
        await api(`/api/v1/webhooks/${encodeURIComponent(delivery.id)}/retry`, { method: "POST" });
        toast("Retry sent");
        follow(delivery.id, delivery.attempts);
      } catch (error) {
        toast(error.message, "error");
        retry.disabled = false;
      }
    });
    toggle.addEventListener("click", () => {
      if (state.open.has(delivery.id)) state.open.delete(delivery.id);
      else state.open.add(delivery.id);
      load();
    });
    const row = el(
      "tr",
      { "data-test-id": `webhook-log-${delivery.id}`, dataset: { status: delivery.status } },
      el(
        "td",
        { dataset: { label: "Event" } },
        el("div", { class: "log-event" }, el("code", {}, delivery.event), endpointCell ? el("div", { class: "log-endpoint" }, endpointCell(delivery)) : null),
      ),
      el("td", { "data-test-id": `webhook-status-${delivery.id}`, dataset: { label: "Status" } }, badge(delivery.status)),
      el("td", { class: "num", "data-test-id": `webhook-attempts-${delivery.id}`, dataset: { label: "Attempts" } }, String(delivery.attempts)),
      el("td", { class: "muted", dataset: { label: "Response" } }, responseText(delivery)),
      el("td", { class: "muted", dataset: { label: "Last attempt" } }, formatTime(delivery.last_attempt_at)),
      el("td", { class: "muted", dataset: { label: "Next retry" } }, delivery.status === "pending" ? formatTime(delivery.next_retry_at) : "—"),
      el("td", { class: "num actions", dataset: { label: "" } }, el("div", { class: "row end" }, toggle, retry)),
    );
    return state.open.has(delivery.id) ? [row, detailsRow(delivery)] : [row];
  }

  async function load() {
    const mine = ++ticket;
    const params = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String(state.offset) });
    if (endpointId) params.set("endpoint_id", endpointId);
    if (state.status) params.set("status", state.status);
    let page;
    try {
      page = await api(`/api/v1/webhooks?${params}`);
    } catch (error) {
      toast(`Delivery logs could not be loaded: ${error.message}`, "error");
      return null;
    }
    if (mine !== ticket) return page; // a newer load is on its way
    const body = page.data.flatMap(rows);
    if (body.length === 0) {
      const [title, text] = state.status ? ["Nothing here", "No delivery has this status."] : empty();
      body.push(emptyRow(columns, title, text));
    }
    table.querySelector("tbody").replaceChildren(...body);
    renderPager(card.querySelector(".pager"), page, (offset) => {
      state.offset = offset;
      load();
    });
    return page;
  }

  /** After a send or a retry: reload every second until that delivery's attempts move. */
  function follow(id, attempts) {
    let left = 15;
    const tick = async () => {
      const page = await load();
      const found = page && page.data.find((delivery) => delivery.id === id);
      left -= 1;
      if (left > 0 && (!found || found.attempts <= attempts || (found.status === "pending" && found.attempts === attempts))) {
        setTimeout(tick, 1000);
      } else {
        onSettled();
      }
    };
    setTimeout(tick, 500);
  }

  /** Reload every second for `seconds` (recovered deliveries go out paced). */
  function pulse(seconds) {
    let left = seconds;
    const tick = async () => {
      await load();
      left -= 1;
      if (left > 0) setTimeout(tick, 1000);
      else onSettled();
    };
    setTimeout(tick, 500);
  }

  /** Back to the first page of every status (after a send, to show it). */
  function showNewest() {
    state.status = "";
    state.offset = 0;
    for (const tab of $("webhook-filter", card).querySelectorAll("button[data-value]")) {
      tab.setAttribute("aria-pressed", String(tab.dataset.value === ""));
    }
  }

  bindTabs($("webhook-filter", card), (status) => {
    state.status = status;
    state.offset = 0;
    load();
  });
  return { load, follow, pulse, showNewest };
}
