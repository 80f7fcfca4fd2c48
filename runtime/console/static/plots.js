// Plots of a run, drawn from its events: the durations of each executor's activations
// (a box per executor: quartiles, median, whiskers to the extremes, the activations as
// points), each superstep's longest activation over the run, and the messages each
// superstep delivered (bars) with the executors it activated (a line).

import { formatDuration, s } from "./dom.js";
import { poolColor } from "./graph.js";

const LABEL_W = 150;
const PAD = 12;
const MAX_POINTS = 160; // drawn per executor; the box holds them all
const MAX_MARKS = 240; // supersteps drawn one by one; more become one path

function quantile(sorted, q) {
  const at = (sorted.length - 1) * q;
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

/** A scale from [lo, hi] to [a, b]: logarithmic when `orders` and the values span more than 50×. */
function scale(lo, hi, a, b, orders = false) {
  const log = orders && lo > 0 && hi / lo > 50;
  const f = log ? Math.log10 : (v) => v;
  const l = f(lo);
  const h = f(hi) === l ? l + 1 : f(hi);
  const map = (v) => a + ((f(Math.max(v, lo)) - l) / (h - l)) * (b - a);
  map.log = log;
  return map;
}

function ticks(lo, hi, log) {
  if (!(hi > lo)) return [lo];
  if (log) {
    const out = [];
    for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) out.push(10 ** e);
    return out.filter((t) => t >= lo / 1.0001 && t <= hi * 1.0001);
  }
  return [lo, (lo + hi) / 2, hi];
}

function axis(svg, x, lo, hi, y, label) {
  for (const t of ticks(lo, hi, x.log)) {
    svg.append(
      s("line", { class: "grid", x1: x(t), x2: x(t), y1: PAD, y2: y }),
      s("text", { class: "tick", x: x(t), y: y + 13, "text-anchor": "middle" }, formatDuration(t)),
    );
  }
  svg.append(s("text", { class: "axis-label", x: LABEL_W, y: y + 28 }, label));
}

/** Box plots of activation durations per executor (`activations`: [{executor, pool, duration}]). */
export function durationsPlot(activations, { width }) {
  const by = new Map();
  for (const a of activations) {
    if (a.duration === null || a.duration === undefined) continue;
    if (!by.has(a.executor)) by.set(a.executor, { executor: a.executor, pool: a.pool, values: [] });
    by.get(a.executor).values.push(a.duration);
  }
  const rows = [...by.values()].sort((p, q) => p.executor.localeCompare(q.executor));
  const rowH = 26;
  const height = PAD + rows.length * rowH + 36;
  const svg = s("svg", {
    class: "plot plot-durations",
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": `Activation durations of ${rows.length} executors`,
  });
  if (!rows.length) return svg;
  const all = rows.flatMap((r) => r.values);
  let lo = Math.min(...all);
  const hi = Math.max(...all);
  if (lo <= 0) lo = hi > 0 ? hi / 1000 : 1e-6;
  if (hi / lo <= 50) lo = 0; // a linear scale from zero
  const x = scale(lo, hi || 1e-6, LABEL_W, width - PAD - 10, true);
  axis(svg, x, lo, hi, PAD + rows.length * rowH, "duration of each activation");
  rows.forEach((row, i) => {
    const values = [...row.values].sort((p, q) => p - q);
    const y = PAD + i * rowH + rowH / 2;
    const [q1, med, q3] = [0.25, 0.5, 0.75].map((q) => quantile(values, q));
    const g = s("g", { class: "box", dataset: { executor: row.executor } });
    g.append(
      s("title", null, `${row.executor}: ${values.length} activations\nmedian ${formatDuration(med)}, quartiles ${formatDuration(q1)} – ${formatDuration(q3)}\nmin ${formatDuration(values[0])}, max ${formatDuration(values[values.length - 1])}`),
      s("text", { class: "row-label", x: 8, y: y + 4 }, row.executor),
      s("line", { class: "whisker", x1: x(values[0]), x2: x(values[values.length - 1]), y1: y, y2: y }),
      s("rect", { class: "iqr", x: x(q1), y: y - 7, width: Math.max(1.5, x(q3) - x(q1)), height: 14, fill: poolColor(row.pool) }),
      s("line", { class: "median", x1: x(med), x2: x(med), y1: y - 8, y2: y + 8 }),
    );
    const step = Math.max(1, Math.ceil(values.length / MAX_POINTS));
    for (let j = 0; j < values.length; j += step) {
      const jitter = ((j * 7919) % 11) - 5; // spread the points without randomness
      g.append(s("circle", { class: "dot", cx: x(values[j]), cy: y + jitter, r: 1.6 }));
    }
    svg.append(g);
  });
  return svg;
}

/** The value axis of a plot over supersteps or time: grid lines at 0 (`base`) and at
 * the largest value `hi` (labelled `label`), `y` mapping values to heights. */
function valueAxis(svg, width, y, hi, base, label) {
  svg.append(
    s("line", { class: "grid", x1: LABEL_W, x2: width - PAD, y1: y(hi), y2: y(hi) }),
    s("text", { class: "tick", x: LABEL_W - 6, y: y(hi) + 4, "text-anchor": "end" }, label),
    s("text", { class: "tick", x: LABEL_W - 6, y: base + 4, "text-anchor": "end" }, "0"),
    s("line", { class: "grid", x1: LABEL_W, x2: width - PAD, y1: base, y2: base }),
  );
}

function stepAxis(svg, steps, x, y) {
  const first = steps[0].k;
  const last = steps[steps.length - 1].k;
  for (const k of first === last ? [first] : [first, Math.round((first + last) / 2), last]) {
    svg.append(s("text", { class: "tick", x: x(k), y: y + 13, "text-anchor": "middle" }, String(k)));
  }
  svg.append(s("text", { class: "axis-label", x: LABEL_W, y: y + 28 }, "superstep"));
}

/** The longest activation of each superstep (`steps`: [{k, activations}]). */
export function stepsPlot(steps, { width }) {
  const height = 150;
  const svg = s("svg", { class: "plot plot-steps", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Longest activation of ${steps.length} supersteps` });
  const data = steps.map((st) => ({ k: st.k, v: Math.max(0, ...st.activations.map((a) => a.duration || 0)) }));
  if (!data.length) return svg;
  const base = height - 36;
  const hi = Math.max(...data.map((d) => d.v)) || 1e-6;
  const x = scale(data[0].k, Math.max(data[data.length - 1].k, data[0].k + 1), LABEL_W, width - PAD - 10);
  const y = (v) => base - (v / hi) * (base - PAD);
  valueAxis(svg, width, y, hi, base, formatDuration(hi));
  svg.append(
    s("path", { class: "series", d: `M${data.map((d) => `${x(d.k).toFixed(1)},${y(d.v).toFixed(1)}`).join("L")}` }),
  );
  if (data.length <= MAX_MARKS) {
    for (const d of data) {
      const point = s("circle", { class: "point", cx: x(d.k), cy: y(d.v), r: 2.6, dataset: { superstep: d.k } });
      point.append(s("title", null, `superstep ${d.k}: ${formatDuration(d.v)}`));
      svg.append(point);
    }
  }
  stepAxis(svg, steps, x, base);
  svg.append(s("text", { class: "row-label", x: 8, y: PAD + 34 }, "longest activation"));
  return svg;
}

/** Messages delivered (bars) and executors activated (line) per superstep
 * (`steps`: [{k, completed, delivered, activations}]). */
export function messagesPlot(steps, { width }) {
  const height = 150;
  const svg = s("svg", { class: "plot plot-messages", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Messages per superstep, ${steps.length} supersteps` });
  const data = steps.filter((st) => st.completed).map((st) => ({ k: st.k, delivered: st.delivered, activated: st.activated ?? st.activations.length }));
  if (!data.length) return svg;
  const base = height - 36;
  const hi = Math.max(1, ...data.map((d) => Math.max(d.delivered, d.activated)));
  const first = data[0].k;
  const last = data[data.length - 1].k;
  const x = scale(first - 0.5, last + 0.5, LABEL_W, width - PAD - 10);
  const y = (v) => base - (v / hi) * (base - PAD);
  const w = Math.max(1, x(first + 0.5) - x(first - 0.5) - 1);
  valueAxis(svg, width, y, hi, base, String(hi));
  if (data.length <= MAX_MARKS) {
    for (const d of data) {
      const bar = s("rect", { class: "count", x: x(d.k) - w / 2, y: y(d.delivered), width: w, height: base - y(d.delivered), dataset: { superstep: d.k } });
      bar.append(s("title", null, `superstep ${d.k}: ${d.delivered} messages delivered, ${d.activated} executors activated`));
      svg.append(bar);
    }
  } else {
    svg.append(s("path", { class: "count-area", d: `M${x(first)},${base}${data.map((d) => `L${x(d.k).toFixed(1)},${y(d.delivered).toFixed(1)}`).join("")}L${x(last)},${base}Z` }));
  }
  svg.append(
    s("path", { class: "series activated", d: `M${data.map((d) => `${x(d.k).toFixed(1)},${y(d.activated).toFixed(1)}`).join("L")}` }),
    s("text", { class: "row-label", x: 8, y: PAD + 34 }, "▮ delivered"),
    s("text", { class: "row-label activated", x: 8, y: PAD + 50 }, "-- activated"),
  );
  stepAxis(svg, data, x, base);
  return svg;
}

/** The end of each completed superstep in seconds since the run's first activation began,
 * from its activations' host clocks (`start` + `duration`), with the messages delivered
 * by then; [] when the events carry no start times. */
export function throughputSeries(steps) {
  const done = steps.filter((st) => st.completed && st.activations.length);
  const starts = done.flatMap((st) => st.activations.map((a) => a.start)).filter((t) => typeof t === "number");
  if (!starts.length) return [];
  const t0 = Math.min(...starts);
  let total = 0;
  const out = [];
  for (const st of done) {
    const ends = st.activations.filter((a) => typeof a.start === "number").map((a) => a.start + (a.duration || 0));
    if (!ends.length) continue;
    total += st.delivered;
    out.push({ k: st.k, t: Math.max(0, Math.max(...ends) - t0), total });
  }
  return out;
}

/** Messages delivered over the run's time (a line of their running total), and the rate
 * over the whole run (`steps`: [{k, completed, delivered, activations}]). */
export function throughputPlot(steps, { width }) {
  const height = 150;
  const data = throughputSeries(steps);
  const last = data[data.length - 1];
  const rate = last && last.t > 0 ? last.total / last.t : null;
  const label = rate === null ? "no timed supersteps yet" : `${last.total.toLocaleString("en")} messages in ${formatDuration(last.t)}: ${Math.round(rate).toLocaleString("en")} a second`;
  const svg = s("svg", { class: "plot plot-throughput", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `Throughput: ${label}` });
  if (!data.length) return svg;
  const base = height - 36;
  const hi = Math.max(1, last.total);
  const x = scale(0, Math.max(last.t, 1e-6), LABEL_W, width - PAD - 10);
  const y = (v) => base - (v / hi) * (base - PAD);
  const points = [{ t: 0, total: 0 }, ...data];
  valueAxis(svg, width, y, hi, base, hi.toLocaleString("en"));
  svg.append(
    s("path", { class: "series", d: `M${points.map((d) => `${x(d.t).toFixed(1)},${y(d.total).toFixed(1)}`).join("L")}` }),
  );
  if (data.length <= MAX_MARKS) {
    for (const d of data) {
      const point = s("circle", { class: "point", cx: x(d.t), cy: y(d.total), r: 2.6, dataset: { superstep: d.k } });
      point.append(s("title", null, `superstep ${d.k}, at ${formatDuration(d.t)}: ${d.total} messages delivered`));
      svg.append(point);
    }
  }
  for (const t of [0, last.t]) {
    svg.append(s("text", { class: "tick", x: x(t), y: base + 13, "text-anchor": "middle" }, formatDuration(t)));
  }
  svg.append(
    s("text", { class: "axis-label", x: LABEL_W, y: base + 28 }, "time since the first activation began"),
    s("text", { class: "row-label rate", x: 8, y: PAD + 34 }, rate === null ? "" : `${Math.round(rate).toLocaleString("en")} /s`),
  );
  return svg;
}
