// The Docs page's webhook events: the catalogue of GET /api/v1/event-types, grouped, each event with
// its description, its data's fields (read from its JSON Schema), a sample body and the schema
// itself. Everything reaches the page as text nodes, never as HTML.

import { copyText, el } from "./app.js";

const GROUPS = [
  ["Disputes", (name) => name.startsWith("payment.dispute.")],
  ["Payments", (name) => name.startsWith("payment.")],
  ["Refunds", (name) => name.startsWith("refund.")],
  ["Orders, invoices and payment links", (name) => /^(order|invoice|payment_link)\./.test(name)],
  ["Saved cards", (name) => name.startsWith("token.")],
  ["Your endpoint", () => true],
];

function groupOf(name) {
  return GROUPS.find(([, matches]) => matches(name))[0];
}

// ---- JSON, highlighted -------------------------------------------------------------------------

const TOKEN = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/g;

/** `value` as indented JSON: keys, strings, numbers and literals in spans of their own. */
function jsonNodes(value) {
  const text = JSON.stringify(value, null, 2);
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    if (match.index > last) nodes.push(text.slice(last, match.index));
    const kind = match[1] ? (match[2] ? "key" : "string") : match[3] ? "literal" : "number";
    nodes.push(el("span", { class: `json-${kind}` }, match[1] || match[0]));
    if (match[2]) nodes.push(match[2]);
    last = match.index + match[0].length;
  }
  nodes.push(text.slice(last));
  return nodes;
}

function jsonBlock(value, testId) {
  const pre = el("pre", { class: "block json", "data-test-id": testId }, jsonNodes(value));
  const copy = el("button", { type: "button", class: "btn small copy" }, "Copy");
  copy.addEventListener("click", () => copyText(JSON.stringify(value, null, 2), copy));
  return el("div", { class: "code-wrap" }, pre, copy);
}

/** Text whose `backticked` parts are code (how the catalogue's descriptions mark names). */
function prose(text) {
  return String(text || "")
    .split(/`([^`]+)`/)
    .map((part, i) => (i % 2 ? el("code", {}, part) : part));
}

// ---- Fields, from a schema ---------------------------------------------------------------------

function typeLabel(schema) {
  const types = [].concat(schema.type || []);
  const nullable = types.includes("null");
  let label = types.filter((type) => type !== "null").join(" | ") || "null";
  if (schema.format === "date-time") label = "timestamp";
  return { label, nullable: nullable && label !== "null" };
}

function allowedValues(schema) {
  if ("const" in schema) return el("span", { class: "values" }, "Always ", el("code", {}, JSON.stringify(schema.const)), ".");
  if (schema.enum) {
    const values = schema.enum.filter((value) => value !== null).map((value) => el("code", {}, JSON.stringify(value)));
    return el("span", { class: "values" }, "One of ", values.flatMap((code, i) => (i ? [" ", code] : [code])), ".");
  }
  return null;
}

function fieldRow(name, schema, required) {
  const { label, nullable } = typeLabel(schema);
  return el(
    "tr",
    {},
    el("td", { class: "field-name", dataset: { label: "Field" } }, el("code", {}, name), required ? null : el("span", { class: "optional" }, "optional")),
    el("td", { class: "field-type", dataset: { label: "Type" } }, label, nullable ? el("span", { class: "nullable" }, " or null") : null),
    el("td", { class: "field-about", dataset: { label: "About" } }, prose(schema.description), allowedValues(schema)),
  );
}

function fieldsTable(schema, testId) {
  const required = new Set(schema.required || []);
  return el(
    "div",
    { class: "table-wrap" },
    el(
      "table",
      { class: "data stackable fields", "data-test-id": testId },
      el("thead", {}, el("tr", {}, el("th", {}, "Field"), el("th", {}, "Type"), el("th", {}, "About"))),
      el("tbody", {}, Object.entries(schema.properties || {}).map(([name, field]) => fieldRow(name, field, required.has(name)))),
    ),
  );
}

function isObject(schema) {
  return Boolean(schema.oneOf || schema.properties);
}

/** One object of `data` (`data.payment`, say); a choice of shapes becomes tabs. */
function objectSection(eventName, path, schema, required) {
  const variants = schema.oneOf || [schema];
  const several = variants.length > 1;
  const body = el("div", { class: "object-body" });
  const tabs = el("div", { class: "tabs small", role: "group", "aria-label": "Shape" });
  const show = (index) => {
    const variant = variants[index];
    body.replaceChildren(
      ...(variant.description ? [el("div", { class: "help" }, prose(variant.description))] : []),
      fieldsTable(variant, `event-fields-${eventName}-${path}`),
    );
    for (const [i, button] of [...tabs.children].entries()) button.setAttribute("aria-pressed", String(i === index));
  };
  variants.forEach((variant, index) => {
    tabs.append(el("button", { type: "button", "data-test-id": `event-variant-${eventName}-${index}`, onclick: () => show(index) }, variant.title));
  });
  show(0);
  const title = el(
    "div",
    { class: "object-title" },
    el("code", {}, path),
    several ? el("span", { class: "shapes" }, `one of ${variants.length} shapes:`) : el("strong", {}, variants[0].title || ""),
    required ? null : el("span", { class: "optional" }, "optional"),
  );
  return el("div", { class: "object" }, el("div", { class: "object-head" }, title, several ? tabs : null), body);
}

function fieldsOf(entry) {
  const schema = entry.schema;
  const required = new Set(schema.required || []);
  const objects = Object.entries(schema.properties).filter(([, field]) => isObject(field));
  if (objects.length === 0) return [fieldsTable(schema, `event-fields-${entry.name}-data`)];
  return objects.map(([name, field]) => objectSection(entry.name, `data.${name}`, field, required.has(name)));
}

// ---- Events ------------------------------------------------------------------------------------

function eventBody(entry) {
  const schemaToggle = el(
    "details",
    { class: "raw-schema" },
    el("summary", { "data-test-id": `event-schema-toggle-${entry.name}` }, "JSON Schema of data (draft 2020-12)"),
    jsonBlock(entry.schema, `event-schema-${entry.name}`),
  );
  return el(
    "div",
    { class: "event-body" },
    el("div", { class: "event-fields" }, el("h4", {}, "Data"), fieldsOf(entry), schemaToggle),
    el("div", { class: "event-sample" }, el("h4", {}, "Sample body"), jsonBlock(entry.sample, `event-sample-${entry.name}`)),
  );
}

function eventDetails(entry, open) {
  const details = el(
    "details",
    { class: "event-type", id: `event-${entry.name}`, open, "data-test-id": `event-type-${entry.name}` },
    el("summary", {}, el("code", { class: "event-name" }, entry.name), el("span", { class: "event-about" }, prose(entry.description))),
  );
  // Built when first opened: the events' tables and samples need not exist until someone looks.
  const build = () => {
    if (details.open && !details.dataset.built) {
      details.dataset.built = "true";
      details.append(eventBody(entry));
    }
  };
  details.addEventListener("toggle", build);
  build();
  return details;
}

/** Fill `root` with the catalogue, grouped; `open` names events to show expanded. */
export function renderEventCatalogue(root, catalogue, { open = [] } = {}) {
  const groups = new Map();
  for (const entry of catalogue.data) {
    const group = groupOf(entry.name);
    if (!groups.has(group)) groups.set(group, []);
    groups.get(group).push(entry);
  }
  root.replaceChildren(
    ...[...groups].map(([group, entries]) =>
      el(
        "section",
        { class: "event-group", "data-test-id": `event-group-${group.toLowerCase().replace(/[^a-z]+/g, "-")}` },
        el("h3", {}, group, el("span", { class: "count" }, String(entries.length))),
        entries.map((entry) => eventDetails(entry, open.includes(entry.name))),
      ),
    ),
  );
}
