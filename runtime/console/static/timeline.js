// The superstep timeline: one lane per host, each activation a bar, each barrier a
// dashed line. The events give each activation's host, its duration and when it
// started on that host (`started_at`, the host's clock): a bar starts that long after
// the superstep's first activation started (at the superstep's start when the event
// has no start time, as from an older host) and lasts its duration, so the spread of
// the starts shows how long delivery took to each host. A superstep is as wide as its
// activations span (plus a few pixels, so that short ones stay visible); the time
// between supersteps (the barrier's commit, dispatch) is not drawn.

import { formatDuration, s } from "./dom.js";
import { poolColor } from "./graph.js";

const ROW_H = 13; // one activation's row in a lane
const BAR_H = 11;
const AXIS_H = 26;

/** Each activation's start after its superstep's first one (seconds; 0 without a start). */
function offsets(step) {
  const starts = step.activations.map((a) => a.start).filter((t) => typeof t === "number");
  const first = starts.length ? Math.min(...starts) : 0;
  return step.activations.map((a) => (typeof a.start === "number" ? a.start - first : 0));
}

function laneKey(a) {
  return a.host ? a.host : `?${a.pool || "?"}`;
}

/** Lanes (hosts), sorted by pool (default first) then name; `rows`: the most
 * activations the host ran in one superstep (they stack in its lane). */
export function lanes(steps) {
  const found = new Map();
  for (const step of steps) {
    const here = new Map();
    for (const a of step.activations) {
      const key = laneKey(a);
      if (!found.has(key)) found.set(key, { key, host: a.host || null, pool: a.pool || "?", rows: 1 });
      here.set(key, (here.get(key) || 0) + 1);
    }
    for (const [key, count] of here) found.get(key).rows = Math.max(found.get(key).rows, count);
  }
  return [...found.values()].sort(
    (x, y) =>
      (x.pool !== "default") - (y.pool !== "default") ||
      x.pool.localeCompare(y.pool) ||
      (x.host === null) - (y.host === null) ||
      String(x.host).localeCompare(String(y.host), undefined, { numeric: true }),
  );
}

/**
 * Draws the timeline of `steps` ({k, activations: [{executor, host, pool, duration,
 * kind, attempts}], completed}) into an SVG `width` pixels wide (wider when there are
 * too many supersteps to fit: the panel scrolls). `inFlight`: the superstep running
 * now (drawn after the last one), `selected`: the superstep to highlight, `onSelect`:
 * called with a superstep clicked.
 */
export function drawTimeline(steps, { width, inFlight = null, selected = null, onSelect = null }) {
  const rows = lanes(steps);
  const n = steps.length;
  const LABEL_W = Math.min(260, Math.max(150, ...rows.map((r) => (r.host || "host unknown").length * 7.6 + 34)));
  let top = AXIS_H;
  for (const row of rows) {
    row.y = top;
    row.h = Math.max(34, row.rows * ROW_H + 8);
    top += row.h;
  }
  const live = inFlight !== null ? 48 : 0;
  const available = Math.max(240, width - LABEL_W - 16 - live);
  let minPx = n > 150 ? 3 : n > 40 ? 6 : 14;
  const starts = steps.map(offsets);
  const widths = steps.map((st, i) => Math.max(0, ...st.activations.map((a, j) => starts[i][j] + (a.duration || 0))));
  const total = widths.reduce((sum, w) => sum + w, 0);
  // at most the whole width for 10 ms: microsecond activations stay small
  let scale = total > 0 ? Math.min(Math.max(0, available - n * minPx) / total, available / 0.01) : 0;
  // too many supersteps to fit: the panel scrolls, an average superstep 3 * minPx wide
  if (total > 0 && scale === 0) scale = (2 * minPx * n) / total;
  if (total === 0) minPx = Math.max(minPx, Math.min(80, available / Math.max(n, 1)));
  const xs = [];
  let x = 0;
  steps.forEach((_, i) => {
    xs.push(x);
    x += minPx + widths[i] * scale;
  });
  const plotW = Math.max(x + live, 40);
  const height = top + 22;
  const svgW = LABEL_W + plotW + 16;
  const svg = s("svg", {
    class: "timeline",
    width: svgW,
    height,
    viewBox: `0 0 ${svgW} ${height}`,
    role: "img",
    "aria-label": `Superstep timeline: ${n} supersteps on ${rows.length} hosts`,
  });
  const plot = s("g", { transform: `translate(${LABEL_W} 0)` });
  // lanes
  rows.forEach((row, r) => {
    const y = row.y;
    svg.append(
      s("rect", { class: `lane${r % 2 ? " odd" : ""}`, x: 0, y, width: svgW, height: row.h }),
      s("rect", { x: 8, y: y + 8, width: 10, height: 10, rx: 2, fill: poolColor(row.pool) }),
      s("text", { class: "lane-host", x: 24, y: y + 17 }, row.host || "host unknown"),
      s("text", { class: "lane-pool", x: 24, y: y + 29 }, `pool ${row.pool}`),
    );
  });
  const laneOf = new Map(rows.map((row) => [row.key, row]));
  const labelEvery = Math.max(1, Math.ceil(28 / Math.max(minPx, 1)));
  steps.forEach((step, i) => {
    const x0 = xs[i];
    const w = minPx + widths[i] * scale;
    if (step.k === selected) {
      plot.append(s("rect", { class: "step-selected", x: x0, y: AXIS_H - 4, width: w, height: top - AXIS_H + 6 }));
    }
    const band = s("rect", {
      class: "step-band",
      x: x0,
      y: 0,
      width: w,
      height,
      dataset: { superstep: step.k },
    });
    // (a tooltip per superstep only where there are few: thousands of nodes cost)
    if (n <= 300) band.append(s("title", null, `superstep ${step.k}: ${step.activations.length} activation(s) over ${formatDuration(widths[i])}`));
    plot.append(band);
    if (i % labelEvery === 0 || step.k === selected) {
      plot.append(s("text", { class: "step-label", x: x0 + 2, y: 14 }, String(step.k)));
    }
    const used = new Map();
    step.activations.forEach((a, j) => {
      const row = laneOf.get(laneKey(a));
      const slot = used.get(row.key) || 0;
      used.set(row.key, slot + 1);
      const y = row.y + 4 + slot * ROW_H + (row.rows === 1 ? (row.h - 8 - BAR_H) / 2 : 0);
      const bw = Math.max(2, (a.duration || 0) * scale);
      const failed = a.kind !== "executor_completed";
      const bar = s("rect", {
        class: `bar ${a.kind.replace("executor_", "kind-")}${a.attempts > 1 ? " retried" : ""}`,
        x: x0 + 1 + starts[i][j] * scale,
        y,
        width: bw,
        height: BAR_H,
        rx: 2,
        fill: failed ? null : poolColor(a.pool),
        dataset: { executor: a.executor, host: a.host || "", superstep: step.k },
      });
      const attempts = a.attempts > 1 ? `, ${a.attempts} attempts` : "";
      bar.append(
        s("title", null, `${a.executor} · superstep ${step.k}\n${a.host || "host unknown"} (pool ${a.pool || "?"})\n${starts[i][j] > 0 ? `started +${formatDuration(starts[i][j])}, ` : ""}${formatDuration(a.duration)}${attempts}${failed ? `\n${a.kind.replace("executor_", "")}` : ""}`),
      );
      plot.append(bar);
      if (bw > a.executor.length * 5.8 + 8) {
        plot.append(s("text", { class: "bar-label", x: x0 + 4 + starts[i][j] * scale, y: y + 9 }, a.executor));
      }
    });
    if (step.completed) {
      plot.append(s("line", { class: "barrier", x1: x0 + w, x2: x0 + w, y1: AXIS_H - 6, y2: top + 2 }));
    }
  });
  if (scale > 0) {
    // a scale bar: how long 100 pixels of activation are
    plot.append(
      s("line", { class: "scale", x1: plotW - 100, x2: plotW, y1: top + 11, y2: top + 11 }),
      s("text", { class: "step-label", x: plotW - 106, y: top + 15, "text-anchor": "end" }, `100 px = ${formatDuration(100 / scale)}`),
    );
  }
  if (inFlight !== null) {
    plot.append(
      s("rect", { class: "in-flight", x: x + 2, y: AXIS_H - 4, width: live - 6, height: top - AXIS_H + 6 }),
      s("text", { class: "step-label live", x: x + 4, y: 14 }, `${inFlight} …`),
    );
  }
  if (onSelect) {
    // one listener for every superstep's band and bars
    plot.addEventListener("click", (event) => {
      const found = event.target.closest("[data-superstep]");
      if (found) onSelect(Number(found.dataset.superstep));
    });
  }
  svg.append(plot);
  return svg;
}
