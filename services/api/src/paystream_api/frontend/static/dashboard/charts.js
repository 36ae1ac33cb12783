// Chart.js (vendored, global `Chart`) set up once in the dashboard's look.

export const COLORS = {
  success: "#16a34a",
  pending: "#f59e0b",
  failed: "#e11d48",
  accent: "#4f46e5",
  grid: "#eef1f5",
  text: "#687385",
};

let defaultsApplied = false;

function applyDefaults() {
  if (defaultsApplied || typeof window.Chart !== "function") return;
  const { defaults } = window.Chart;
  defaults.font.family = getComputedStyle(document.body).fontFamily;
  defaults.font.size = 12;
  defaults.color = COLORS.text;
  // Figures change in place every few seconds: no animation to watch each time.
  defaults.animation = false;
  defaults.plugins.legend.position = "bottom";
  defaults.plugins.legend.labels.boxWidth = 10;
  defaults.plugins.legend.labels.boxHeight = 10;
  defaults.plugins.legend.labels.usePointStyle = true;
  defaults.plugins.tooltip.mode = "index";
  defaults.plugins.tooltip.intersect = false;
  defaultsApplied = true;
}

/** A chart on `canvas`, or null when Chart.js is not there (the page still works without it). */
export function makeChart(canvas, config) {
  applyDefaults();
  if (typeof window.Chart !== "function" || !canvas) return null;
  return new window.Chart(canvas, {
    ...config,
    options: { responsive: true, maintainAspectRatio: false, ...config.options },
  });
}

const clock = new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit" });

/** Labels for `count` buckets of `stepS` seconds starting at unix time `start`. */
export function timeLabels(start, stepS, count) {
  return Array.from({ length: count }, (_, index) => clock.format(new Date((start + index * stepS) * 1000)));
}
