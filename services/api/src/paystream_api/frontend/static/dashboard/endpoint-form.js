// The webhook endpoint form, on the Webhooks page (add) and on an endpoint's page (edit): URL,
// description, the events filter (every event, or `prefix.*` wildcards and exact names), custom
// headers and a rate limit. The API's refusal is shown next to the field it names.

import { ApiError, el } from "./app.js";
import { isAllEvents } from "./endpoint-state.js";

const ALL_EVENTS = "*";
const WILDCARD = ".*";
const FIELDS = ["url", "description", "events", "headers", "rate_limit_per_s"];
// The families merchants look for first; any other follows in alphabetical order.
const FAMILY_ORDER = ["payment", "refund", "order", "invoice", "payment_link", "token", "webhook", "endpoint"];

// ---- The events filter -------------------------------------------------------------------------

/**
 * The event types as a tree of prefixes, as the API reads wildcards: `payment.*` covers
 * `payment.success` and `payment.dispute.*`, which covers `payment.dispute.won`.
 */
export function eventTree(eventTypes) {
  const nodes = new Map();
  const node = (prefix) => {
    if (!nodes.has(prefix)) nodes.set(prefix, { prefix, names: [], children: [] });
    return nodes.get(prefix);
  };
  const roots = [];
  const loose = [];
  for (const name of [...eventTypes].sort()) {
    const parts = name.split(".");
    if (parts.length < 2) {
      loose.push(name);
      continue;
    }
    for (let depth = 1; depth < parts.length; depth += 1) {
      const prefix = parts.slice(0, depth).join(".");
      if (nodes.has(prefix)) continue;
      const created = node(prefix);
      if (depth === 1) roots.push(created);
      else nodes.get(parts.slice(0, depth - 1).join(".")).children.push(created);
    }
    node(parts.slice(0, -1).join(".")).names.push(name);
  }
  const rank = (node) => (FAMILY_ORDER.includes(node.prefix) ? FAMILY_ORDER.indexOf(node.prefix) : FAMILY_ORDER.length);
  roots.sort((a, b) => rank(a) - rank(b) || a.prefix.localeCompare(b.prefix));
  return { roots, loose };
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

function countNames(node) {
  return node.names.length + node.children.reduce((sum, child) => sum + countNames(child), 0);
}

class EventsPicker {
  constructor(eventTypes, idPrefix) {
    this.tree = eventTree(eventTypes);
    this.wildcards = new Map(); // prefix -> {input, covered: [inputs]}
    this.exact = new Map(); // name -> input
    this.mode = "all";
    const radio = (value, label, help) =>
      el(
        "label",
        { class: "check choice" },
        el("input", { type: "radio", name: `${idPrefix}-events-mode`, value, "data-test-id": `endpoint-events-${value}`, checked: value === "all" }),
        el("span", {}, el("strong", {}, label), el("span", { class: "help" }, help)),
      );
    this.allRadio = radio("all", "All events", "Every event, including types added later.");
    this.someRadio = radio("some", "Selected events", "Pick event types, or a whole family with its wildcard.");
    this.toggles = new Map(); // root prefix -> its show/hide button
    this.groups = el(
      "div",
      { class: "filter-groups-box", "data-test-id": "endpoint-events-picker", hidden: true },
      el("div", { class: "help" }, "A wildcard such as ", el("code", {}, "payment.*"), " covers every type under it, including types added later."),
      el(
        "div",
        { class: "filter-groups" },
        this.tree.roots.map((root) => this.renderNode(root, 0)),
        this.tree.loose.length ? el("div", { class: "filter-group", role: "group" }, el("div", { class: "filter-names" }, this.tree.loose.map((name) => this.exactBox(name)))) : null,
      ),
    );
    this.preview = el("div", { class: "filter-preview", "data-test-id": "endpoint-filter-preview", "aria-live": "polite" });
    this.root = el("div", { class: "filter-picker" }, el("div", { class: "choices" }, this.allRadio, this.someRadio), this.groups, this.preview);
    for (const choice of [this.allRadio, this.someRadio]) {
      choice.querySelector("input").addEventListener("change", (event) => this.setMode(event.target.value));
    }
    this.root.addEventListener("change", (event) => {
      if (event.target.type === "checkbox") {
        this.applyCoverage();
        this.renderPreview();
      }
    });
    this.renderPreview();
  }

  exactBox(name) {
    const input = el("input", { type: "checkbox", value: name, "data-test-id": `endpoint-event-${name}` });
    this.exact.set(name, input);
    return el("label", { class: "check" }, input, el("code", {}, name));
  }

  renderNode(node, depth) {
    const input = el("input", { type: "checkbox", value: node.prefix + WILDCARD, "data-test-id": `endpoint-event-${node.prefix}${WILDCARD}` });
    const entry = { input, covered: [] };
    this.wildcards.set(node.prefix, entry);
    const count = countNames(node);
    const wildcard = el("label", { class: "check wildcard" }, input, el("code", {}, node.prefix + WILDCARD));
    const body = el(
      "div",
      { class: "filter-body" },
      node.names.length ? el("div", { class: "filter-names" }, node.names.map((name) => this.exactBox(name))) : null,
      node.children.map((child) => this.renderNode(child, depth + 1)),
    );
    let head;
    if (depth === 0) {
      // A family shows its wildcard; its types open on demand.
      const toggle = el("button", { type: "button", class: "filter-toggle", "aria-expanded": "false", "data-test-id": `endpoint-group-toggle-${node.prefix}` }, plural(count, "type"));
      toggle.addEventListener("click", () => this.expand(node.prefix, toggle.getAttribute("aria-expanded") !== "true"));
      this.toggles.set(node.prefix, { toggle, body });
      body.hidden = true;
      head = el("div", { class: "filter-head" }, wildcard, toggle);
    } else {
      head = el("div", { class: "filter-head" }, wildcard, el("span", { class: "filter-count" }, plural(count, "type")));
    }
    const group = el("div", { class: depth === 0 ? "filter-group" : "filter-group nested", role: "group", "aria-label": `${node.prefix} events` }, head, body);
    // Everything in the wildcard's body is covered by it.
    entry.covered = [...body.querySelectorAll("input[type=checkbox]")];
    return group;
  }

  expand(prefix, open) {
    const { toggle, body } = this.toggles.get(prefix);
    toggle.setAttribute("aria-expanded", String(open));
    body.hidden = !open;
  }

  setMode(mode) {
    this.mode = mode;
    this.allRadio.querySelector("input").checked = mode === "all";
    this.someRadio.querySelector("input").checked = mode === "some";
    this.groups.hidden = mode === "all";
    this.renderPreview();
  }

  /** A checked wildcard shows what it covers as checked and fixed; unchecking gives them back. */
  applyCoverage() {
    // A box shown checked because a wildcard covers it keeps its own choice in data-own.
    const own = (box) => (box.disabled ? box.dataset.own === "true" : box.checked);
    const covered = new Set();
    for (const { input, covered: boxes } of this.wildcards.values()) {
      if (!covered.has(input) && own(input)) for (const box of boxes) covered.add(box);
    }
    for (const box of [...this.exact.values(), ...[...this.wildcards.values()].map((entry) => entry.input)]) {
      const isCovered = covered.has(box);
      if (isCovered && !box.disabled) {
        box.dataset.own = String(box.checked);
        box.checked = true;
      } else if (!isCovered && box.disabled) {
        box.checked = box.dataset.own === "true";
      }
      box.disabled = isCovered;
      box.closest("label").classList.toggle("covered", isCovered);
    }
  }

  /** The filter as the API takes it: ["*"], or the wildcards and names not covered by another. */
  value() {
    if (this.mode === "all") return [ALL_EVENTS];
    const entries = [];
    const walk = (node) => {
      const { input } = this.wildcards.get(node.prefix);
      if (input.checked && !input.disabled) {
        entries.push(node.prefix + WILDCARD);
        return;
      }
      for (const name of node.names) if (this.exact.get(name).checked) entries.push(name);
      for (const child of node.children) walk(child);
    };
    for (const root of this.tree.roots) walk(root);
    for (const name of this.tree.loose) if (this.exact.get(name).checked) entries.push(name);
    return entries;
  }

  set(events) {
    for (const box of [...this.exact.values(), ...[...this.wildcards.values()].map((entry) => entry.input)]) {
      box.disabled = false;
      box.checked = false;
      box.closest("label").classList.remove("covered");
    }
    const all = !events || isAllEvents(events);
    if (!all) {
      for (const entry of events) {
        const box = entry.endsWith(WILDCARD) ? this.wildcards.get(entry.slice(0, -WILDCARD.length))?.input : this.exact.get(entry);
        if (box) box.checked = true;
      }
    }
    this.applyCoverage();
    // Open the families where a choice was made below the wildcard.
    for (const [prefix, { body }] of this.toggles) {
      const chosen = [...body.querySelectorAll("input[type=checkbox]")].some((box) => box.checked && !box.disabled);
      this.expand(prefix, chosen);
    }
    this.setMode(all ? "all" : "some");
  }

  renderPreview() {
    const events = this.value();
    if (this.mode === "all") {
      this.preview.replaceChildren(el("span", { class: "help" }, "Filter: "), el("code", {}, '["*"]'), el("span", { class: "help" }, " — every event."));
    } else if (events.length === 0) {
      this.preview.replaceChildren(el("span", { class: "help" }, "Pick at least one event type or wildcard."));
    } else {
      this.preview.replaceChildren(el("span", { class: "help" }, "Filter: "), el("code", {}, JSON.stringify(events)));
    }
  }
}

// ---- Custom headers ----------------------------------------------------------------------------

class HeadersEditor {
  constructor() {
    this.rows = el("div", { class: "header-rows", "data-test-id": "endpoint-headers" });
    const add = el("button", { type: "button", class: "btn small", "data-test-id": "endpoint-add-header-button" }, "+ Add header");
    add.addEventListener("click", () => this.addRow("", "", true));
    this.root = el("div", { class: "headers-editor" }, this.rows, el("div", {}, add));
  }

  addRow(name, value, focus = false) {
    const nameInput = el("input", { class: "input mono", placeholder: "X-Tenant", "aria-label": "Header name", autocomplete: "off", spellcheck: "false", "data-test-id": "endpoint-header-name", value: name });
    const valueInput = el("input", { class: "input mono", placeholder: "value", "aria-label": "Header value", autocomplete: "off", spellcheck: "false", "data-test-id": "endpoint-header-value", value });
    const remove = el("button", { type: "button", class: "btn small link danger", "aria-label": "Remove header", "data-test-id": "endpoint-remove-header-button" }, "Remove");
    const row = el("div", { class: "header-row" }, nameInput, valueInput, remove);
    remove.addEventListener("click", () => row.remove());
    this.rows.append(row);
    if (focus) nameInput.focus();
  }

  set(headers) {
    this.rows.replaceChildren();
    for (const [name, value] of Object.entries(headers || {})) this.addRow(name, value);
  }

  /** `{name: value}`, or throws a message when a row is half filled or a name repeats. */
  value() {
    const headers = {};
    for (const row of this.rows.querySelectorAll(".header-row")) {
      const [nameInput, valueInput] = row.querySelectorAll("input");
      const name = nameInput.value.trim();
      const value = valueInput.value.trim();
      if (!name && !value) continue;
      if (!name) throw new Error("Name every header, or remove the row.");
      if (Object.hasOwn(headers, name)) throw new Error(`The ${name} header is named twice.`);
      headers[name] = value;
    }
    return headers;
  }

  /** The rows whose name an API error names (its description quotes the header). */
  markNamed(description) {
    for (const row of this.rows.querySelectorAll(".header-row")) {
      const name = row.querySelector("input").value.trim();
      const named = Boolean(name) && new RegExp(`\\b${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}\\b`, "i").test(description);
      for (const input of row.querySelectorAll("input")) input.classList.toggle("invalid", named);
    }
  }
}

// ---- The form ----------------------------------------------------------------------------------

function fieldBox(key, label, control, help, { optional = false, labelFor, errorId }) {
  const error = el("div", { class: "field-error", role: "alert", id: errorId, "data-test-id": `endpoint-${key}-error`, hidden: true });
  const caption = [label, optional ? el("span", { class: "help" }, " (optional)") : null];
  return el(
    "div",
    { class: "field", dataset: { field: key } },
    labelFor ? el("label", { for: labelFor }, caption) : el("span", { class: "label" }, caption),
    control,
    help ? el("div", { class: "help" }, help) : null,
    error,
  );
}

/**
 * Renders the endpoint form into `form` and calls `onSubmit(fields)` with what to send (only the
 * fields that differ from the endpoint being edited, if any); an `ApiError` it throws is shown at
 * its field. Returns `{ setEndpoint }` for the edit page to refresh what the form holds.
 */
export function endpointForm(form, { eventTypes, idPrefix, submitLabel, onSubmit, onCancel }) {
  let current = null;
  const url = el("input", { id: `${idPrefix}-url`, class: "input mono", type: "url", placeholder: "https://example.com/webhooks/paystream", autocomplete: "off", spellcheck: "false", "data-test-id": "endpoint-url-input" });
  const description = el("input", { id: `${idPrefix}-description`, class: "input", maxlength: "500", placeholder: "Accounting system", autocomplete: "off", "data-test-id": "endpoint-description-input" });
  const events = new EventsPicker(eventTypes, idPrefix);
  const headers = new HeadersEditor();
  const rate = el("input", { id: `${idPrefix}-rate`, class: "input", type: "number", min: "1", max: "10000", step: "1", inputmode: "numeric", placeholder: "No limit", "data-test-id": "endpoint-rate-limit-input" });
  const message = el("div", { class: "alert", role: "status", "data-test-id": "endpoint-form-message", hidden: true });
  const submit = el("button", { type: "submit", class: "btn primary", "data-test-id": "endpoint-save-button" }, submitLabel);
  const cancel = onCancel ? el("button", { type: "button", class: "btn", "data-test-id": "endpoint-cancel-button" }, "Cancel") : null;
  const errorId = (key) => `${idPrefix}-${key}-error`;
  const boxes = {
    url: fieldBox("url", "Endpoint URL", url, "Paystream POSTs signed events here: http or https, a host that resolves to a public address.", { labelFor: url.id, errorId: errorId("url") }),
    description: fieldBox("description", "Description", description, null, { optional: true, labelFor: description.id, errorId: errorId("description") }),
    events: fieldBox("events", "Events", events.root, null, { errorId: errorId("events") }),
    headers: fieldBox("headers", "Custom headers", headers.root, "Sent with every attempt, for example to route or authenticate at your side. Paystream sets the webhook-* and X-Webhook-* headers itself.", { optional: true, errorId: errorId("headers") }),
    rate_limit_per_s: fieldBox("rate_limit_per_s", "Rate limit", el("div", { class: "input-suffix" }, rate, el("span", {}, "per second")), "At most this many deliveries a second; above it they wait, they do not fail. Empty: no limit.", { optional: true, labelFor: rate.id, errorId: errorId("rate_limit_per_s") }),
  };
  form.classList.add("form", "endpoint-form");
  form.noValidate = true;
  form.replaceChildren(
    el("div", { class: "row" }, boxes.url, boxes.description),
    boxes.events,
    boxes.headers,
    boxes.rate_limit_per_s,
    message,
    el("div", { class: "row" }, submit, cancel),
  );
  if (cancel) cancel.addEventListener("click", onCancel);

  const clearErrors = () => {
    for (const box of Object.values(boxes)) {
      const error = box.querySelector(".field-error");
      error.hidden = true;
      error.textContent = "";
      for (const input of box.querySelectorAll(".input")) {
        input.classList.remove("invalid");
        input.removeAttribute("aria-invalid");
      }
    }
    message.hidden = true;
  };
  const fieldError = (field, text) => {
    const box = boxes[field];
    const error = box.querySelector(".field-error");
    error.textContent = text;
    error.hidden = false;
    if (field === "headers") headers.markNamed(text);
    else for (const input of box.querySelectorAll(".input")) {
      input.classList.add("invalid");
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", error.id);
    }
    const focusable = box.querySelector(".input.invalid") || box.querySelector("input, button");
    if (focusable) focusable.focus();
  };
  const formMessage = (kind, text) => {
    message.className = `alert ${kind}`;
    message.textContent = text;
    message.hidden = !text;
  };

  /** What the form holds as API fields; a field-named Error when it cannot be sent as is. */
  const read = () => {
    const fields = { url: url.value.trim(), description: description.value.trim(), events: events.value() };
    if (!fields.url) throw Object.assign(new Error("Enter the URL Paystream should send events to."), { field: "url" });
    if (fields.events.length === 0) throw Object.assign(new Error("Pick at least one event type or wildcard, or choose all events."), { field: "events" });
    try {
      fields.headers = headers.value();
    } catch (error) {
      throw Object.assign(error, { field: "headers" });
    }
    if (rate.validity.badInput) throw Object.assign(new Error("Enter a whole number of deliveries per second, or leave it empty."), { field: "rate_limit_per_s" });
    fields.rate_limit_per_s = rate.value.trim() === "" ? null : Number(rate.value);
    return fields;
  };

  const changed = (fields) => {
    if (!current) return fields;
    const before = { url: current.url, description: current.description, events: current.events, headers: current.headers, rate_limit_per_s: current.rate_limit_per_s };
    return Object.fromEntries(Object.entries(fields).filter(([name, value]) => JSON.stringify(value) !== JSON.stringify(before[name])));
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    let fields;
    try {
      fields = changed(read());
    } catch (error) {
      fieldError(error.field, error.message);
      return;
    }
    if (Object.keys(fields).length === 0) {
      formMessage("info", "Nothing changed.");
      return;
    }
    submit.disabled = true;
    try {
      await onSubmit(fields);
    } catch (error) {
      if (error instanceof ApiError && FIELDS.includes(error.field)) fieldError(error.field, error.message);
      else formMessage("error", error.message);
    } finally {
      submit.disabled = false;
    }
  });

  const setEndpoint = (endpoint) => {
    current = endpoint;
    clearErrors();
    url.value = endpoint ? endpoint.url : "";
    description.value = endpoint ? endpoint.description : "";
    events.set(endpoint ? endpoint.events : [ALL_EVENTS]);
    headers.set(endpoint ? endpoint.headers : {});
    rate.value = endpoint && endpoint.rate_limit_per_s ? String(endpoint.rate_limit_per_s) : "";
  };
  setEndpoint(null);
  return { setEndpoint, message: formMessage, focus: () => url.focus() };
}
