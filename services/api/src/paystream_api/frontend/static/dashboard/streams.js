// Streams (/dashboard/streams): the bus as `payctl health` reads it, refreshed every two seconds.
// A row needs attention by payctl health's default thresholds.

import { $, api, el, emptyRow, formatCount, formatDuration, initShell } from "./app.js";

const REFRESH_MS = 2000;
const MAX_LAG = 1000;
const MAX_PENDING_AGE_S = 300;
const clock = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit", second: "2-digit" });

function lagText(item) {
  if (item.lag === null || item.lag === undefined) return "—";
  return `${formatCount(item.lag)}${item.lag_capped ? "+" : ""}`;
}

function groupProblems(group) {
  const problems = [];
  if (group.live_consumers === 0) problems.push("no live consumer");
  if (group.lag > MAX_LAG) problems.push(`lag ${group.lag}`);
  if (group.oldest_pending_age_s !== null && group.oldest_pending_age_s > MAX_PENDING_AGE_S) problems.push("old pending entry");
  return problems;
}

function health(ok, text) {
  return el("span", { class: `badge ${ok ? "success" : "failed"}` }, text);
}

function render(body) {
  const problems = [];
  const bus = body.bus;
  const groupsBody = $("streams-table").querySelector("tbody");
  const readersBody = $("readers-table").querySelector("tbody");
  const streamsBody = $("dead-letters-table").querySelector("tbody");
  if (!bus.available) {
    problems.push("Redis cannot be read right now");
    groupsBody.replaceChildren(emptyRow(7, "Redis is unreachable", "The figures come back as soon as it answers."));
  } else {
    const groups = bus.groups.map((group) => {
      const found = groupProblems(group);
      problems.push(...found.map((problem) => `${group.group} on ${group.stream}: ${problem}`));
      return el(
        "tr",
        { "data-test-id": `stream-group-${group.stream}-${group.group}` },
        el("td", { dataset: { label: "Stream" } }, el("code", {}, group.stream)),
        el("td", { dataset: { label: "Group" } }, group.group),
        el("td", { dataset: { label: "Health" } }, health(found.length === 0, found.length === 0 ? "ok" : found.join(", "))),
        el("td", { class: "num", dataset: { label: "Live consumers" } }, `${group.live_consumers} / ${group.consumers}`),
        el("td", { class: "num", "data-test-id": `stream-lag-${group.group}`, dataset: { label: "Lag" } }, lagText(group)),
        el("td", { class: "num", "data-test-id": `stream-pending-${group.group}`, dataset: { label: "Pending" } }, formatCount(group.pending)),
        el("td", { class: "num", dataset: { label: "Oldest pending" } }, formatDuration(group.oldest_pending_age_s)),
      );
    });
    groupsBody.replaceChildren(...(groups.length ? groups : [emptyRow(7, "No consumer groups yet", "Groups appear once the services start.")]));
    const readers = bus.readers.map((reader) => {
      if (!reader.live) problems.push(`${reader.reader} on ${reader.stream}: silent`);
      return el(
        "tr",
        {},
        el("td", { dataset: { label: "Reader" } }, reader.reader),
        el("td", { dataset: { label: "Stream" } }, el("code", {}, reader.stream)),
        el("td", { dataset: { label: "State" } }, health(reader.live, reader.live ? "live" : "silent")),
        el("td", { class: "num", dataset: { label: "Lag" } }, lagText(reader)),
        el("td", { class: "num", dataset: { label: "Last heartbeat" } }, `${formatDuration(reader.last_beat_s)} ago`),
      );
    });
    readersBody.replaceChildren(...(readers.length ? readers : [emptyRow(5, "No notifier running", "Start the notifier to follow payments live.", { compact: true })]));
    const streams = bus.streams.map((stream) => {
      const dead = bus.dead_letters[stream.stream] || 0;
      if (dead > 0) problems.push(`${stream.stream}: ${dead} dead letter(s)`);
      return el(
        "tr",
        {},
        el("td", { dataset: { label: "Stream" } }, el("code", {}, stream.stream)),
        el("td", { class: "num", dataset: { label: "Length" } }, formatCount(stream.length)),
        el("td", { class: "num", "data-test-id": `dead-letters-${stream.stream}`, dataset: { label: "Dead letters" } }, formatCount(dead)),
      );
    });
    streamsBody.replaceChildren(...streams);
    const totalLag = bus.groups.reduce((sum, group) => sum + group.lag, 0);
    const totalPending = bus.groups.reduce((sum, group) => sum + group.pending, 0);
    const oldest = Math.max(0, ...bus.groups.map((group) => group.oldest_pending_age_s || 0));
    const dead = Object.values(bus.dead_letters).reduce((sum, n) => sum + n, 0);
    $("total-lag").textContent = formatCount(totalLag);
    $("total-pending-entries").textContent = formatCount(totalPending);
    $("oldest-pending").textContent = totalPending ? `oldest ${formatDuration(oldest)}` : "nothing unacknowledged";
    $("dead-letter-count").textContent = formatCount(dead);
    $("dead-letter-count").classList.toggle("bad", dead > 0);
  }
  if (body.outbox.available) {
    $("outbox-backlog").textContent = `${formatCount(body.outbox.unpublished)}${body.outbox.capped ? "+" : ""}`;
    $("outbox-oldest").textContent = body.outbox.unpublished ? `oldest ${formatDuration(body.outbox.oldest_age_s)}` : "everything published";
  } else {
    problems.push("PostgreSQL cannot be read right now");
    $("outbox-backlog").textContent = "—";
  }
  const box = $("streams-health");
  box.className = `alert ${problems.length ? "warn" : "ok"}`;
  box.textContent = problems.length ? `Needs attention: ${problems.join("; ")}` : "All consumer groups are live and keeping up.";
  box.hidden = false;
}

async function refresh() {
  const stamp = $("streams-updated");
  try {
    render(await api("/api/v1/dashboard/streams"));
    stamp.dataset.state = "connected";
    stamp.textContent = `Updated ${clock.format(new Date())}`;
  } catch {
    stamp.dataset.state = "offline";
    stamp.textContent = "Update failed — retrying";
  }
  setTimeout(refresh, REFRESH_MS);
}

async function main() {
  await initShell();
  refresh();
}

main();
