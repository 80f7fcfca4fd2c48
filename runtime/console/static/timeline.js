// The superstep timeline: one lane per host, each activation a bar, each barrier a
// dashed line. The events give each activation's host, its duration and when it
// started on that host (`started_at`, the host's clock): a bar starts that long after
// the superstep's first activation started (at the superstep's start when the event
// has no start time, as from an older host) and lasts its duration, so the spread of
// the starts shows how long delivery took to each host. A superstep is as wide as its
// activations span (plus a few pixels, so that short ones stay visible); the time
// between supersteps (the barrier's commit, dispatch) is not drawn.
//
// A timeline is drawn once and then extended (`createTimeline`): each update appends
// the supersteps added since the last one (as one group, from markup: thousands of
// elements are made fastest so), draws again the last one when it was drawn open and
// more of its activations came, and moves the highlight of the selected superstep and
// the marker of the one in flight. While the run is live the layout (pixels per
// superstep and per second, the lanes) stays as long as the drawing it makes is within
// a factor of 1.5 as wide as the exact layout's, so appending never moves what is
// drawn; a new host, a lane that needs another row, another width or a layout further
// off draws it whole again (a few times in a run, fewer as it grows). Once it is not
// live, it is drawn with the exact layout, as `drawTimeline` draws supersteps at once.

import { formatDuration, s, setAttrs, setText } from "./dom.js";
import { poolColor } from "./graph.js";

const ROW_H = 13; // one activation's row in a lane
const BAR_H = 11;
const AXIS_H = 26;
const LIVE_W = 48; // the marker of the superstep in flight
const DRIFT = 1.5; // while live: how much wider or narrower than the exact layout's
const GROW_PX = 600; // while live: the drawing widens by at least this much at a time

/** Each activation's start after its superstep's first one (seconds; 0 without a start). */
function offsets(step) {
  const starts = step.activations.map((a) => a.start).filter((t) => typeof t === "number");
  const first = starts.length ? Math.min(...starts) : 0;
  return step.activations.map((a) => (typeof a.start === "number" ? a.start - first : 0));
}

function laneKey(a) {
  return a.host ? a.host : `?${a.pool || "?"}`;
}

/** Lanes by pool (default first), then by host name. */
function laneOrder(x, y) {
  return (
    (x.pool !== "default") - (y.pool !== "default") ||
    x.pool.localeCompare(y.pool) ||
    (x.host === null) - (y.host === null) ||
    String(x.host).localeCompare(String(y.host), undefined, { numeric: true })
  );
}

/** Adds the lanes (hosts) `step` needs to `found` (key -> lane; `rows`: the most
 * activations the host ran in one superstep, stacked in its lane); true when that
 * added a lane or a row to one. */
function countLanes(found, step) {
  let grew = false;
  const here = new Map();
  for (const a of step.activations) {
    const key = laneKey(a);
    if (!found.has(key)) {
      found.set(key, { key, host: a.host || null, pool: a.pool || "?", rows: 1 });
      grew = true;
    }
    here.set(key, (here.get(key) || 0) + 1);
  }
  for (const [key, count] of here) {
    const lane = found.get(key);
    if (count > lane.rows) {
      lane.rows = count;
      grew = true;
    }
  }
  return grew;
}

/** The layout of `n` supersteps whose activations span `total` seconds, in `width`
 * pixels with `rows` lanes: the label column, pixels per superstep and per second. */
function layoutFor(n, total, rows, width, inFlight) {
  const labelW = Math.min(260, Math.max(150, ...rows.map((r) => (r.host || "host unknown").length * 7.6 + 34)));
  const available = Math.max(240, width - labelW - 16 - (inFlight ? LIVE_W : 0));
  let minPx = n > 150 ? 3 : n > 40 ? 6 : 14;
  // at most the whole width for 10 ms: microsecond activations stay small
  let scale = total > 0 ? Math.min(Math.max(0, available - n * minPx) / total, available / 0.01) : 0;
  // too many supersteps to fit: the panel scrolls, an average superstep 3 * minPx wide
  if (total > 0 && scale === 0) scale = (2 * minPx * n) / total;
  if (total === 0) minPx = Math.max(minPx, Math.min(80, available / Math.max(n, 1)));
  return { width, labelW, minPx, scale, labelEvery: Math.max(1, Math.ceil(28 / Math.max(minPx, 1))) };
}

const near = (a, b) => (a === 0 || b === 0 ? a === b : a / b <= DRIFT && b / a <= DRIFT);

/** How wide `layout` draws `n` supersteps whose activations span `total` seconds. */
const extent = (layout, n, total) => n * layout.minPx + total * layout.scale;

/**
 * A timeline to extend: `element`, its SVG; `update(steps, options)` draws `steps`
 * ({k, activations: [{executor, host, pool, duration, start, kind, attempts}],
 * completed}, in order) `width` pixels wide (wider when there are too many supersteps
 * to fit: the panel scrolls). `inFlight`: the superstep running now (drawn after the
 * last one), `selected`: the superstep to highlight, `live`: whether more will come
 * (the layout may then be off by a little, see above). `onSelect`: called with a
 * superstep clicked.
 */
export function createTimeline({ onSelect = null } = {}) {
  const svg = s("svg", { class: "timeline", role: "img" });
  const laneLayer = s("g");
  const plot = s("g");
  // one rect under the supersteps takes the pointer (not one a superstep); another
  // shows the superstep pointed at
  const hit = s("rect", { class: "step-hit", x: 0, y: 0 });
  const hover = s("rect", { class: "step-hover", y: 0 }, s("title"));
  const selectedRect = s("rect", { class: "step-selected" });
  const stepLayer = s("g");
  const selectedLabel = s("text", { class: "step-label", y: 14 });
  const scaleLine = s("line", { class: "scale" });
  const scaleText = s("text", { class: "step-label", "text-anchor": "end" });
  const flightRect = s("rect", { class: "in-flight" });
  const flightText = s("text", { class: "step-label live", y: 14 });
  plot.append(hit, selectedRect, stepLayer, selectedLabel);
  svg.append(laneLayer, plot);

  let layout = null; // {width, labelW, minPx, scale, labelEvery}
  let laneMap = new Map(); // key -> {key, host, pool, rows, y, h}
  let rows = []; // the lanes in order
  let top = AXIS_H; // where the lanes end
  let drawn = []; // per superstep drawn: {step, count, completed, x0, w, g}
  let byStep = new Map(); // superstep -> its entry in `drawn`
  let end = 0; // where the last superstep drawn ends
  let svgW = 0;
  const measured = new WeakMap(); // step -> {count, starts, span}

  function measure(step) {
    let m = measured.get(step);
    if (!m || m.count !== step.activations.length) {
      const starts = offsets(step);
      const span = Math.max(0, ...step.activations.map((a, j) => starts[j] + (a.duration || 0)));
      m = { count: step.activations.length, starts, span };
      measured.set(step, m);
    }
    return m;
  }

  function same(entry, step) {
    return entry.step === step && entry.count === step.activations.length && entry.completed === step.completed;
  }

  function placeLanes() {
    rows = [...laneMap.values()].sort(laneOrder);
    top = AXIS_H;
    for (const row of rows) {
      row.y = top;
      row.h = Math.max(34, row.rows * ROW_H + 8);
      top += row.h;
    }
  }

  function drawLanes() {
    laneLayer.replaceChildren();
    rows.forEach((row, r) => {
      row.rect = s("rect", { class: `lane${r % 2 ? " odd" : ""}`, x: 0, y: row.y, width: svgW, height: row.h });
      laneLayer.append(
        row.rect,
        s("rect", { x: 8, y: row.y + 8, width: 10, height: 10, rx: 2, fill: poolColor(row.pool) }),
        s("text", { class: "lane-host", x: 24, y: row.y + 17 }, row.host || "host unknown"),
        s("text", { class: "lane-pool", x: 24, y: row.y + 29 }, `pool ${row.pool}`),
      );
    });
  }

  /** The markup of superstep `step`, the `i`th, from `x0` (added to `parts`); its entry. */
  function stepMarkup(step, i, x0, parts) {
    const { minPx, scale } = layout;
    const { starts, span } = measure(step);
    const w = minPx + span * scale;
    const k = escape(step.k); // (what the events say goes into markup escaped)
    if (i % layout.labelEvery === 0) parts.push(`<text class="step-label" x="${x0 + 2}" y="14">${k}</text>`);
    const used = new Map();
    step.activations.forEach((a, j) => {
      const row = laneMap.get(laneKey(a));
      const slot = used.get(row.key) || 0;
      used.set(row.key, slot + 1);
      const y = row.y + 4 + slot * ROW_H + (row.rows === 1 ? (row.h - 8 - BAR_H) / 2 : 0);
      const bw = Math.max(2, (a.duration || 0) * scale);
      const x = x0 + 1 + starts[j] * scale;
      const kind = escape(a.kind.replace("executor_", "kind-"));
      const fill = a.kind === "executor_completed" ? ` fill="${poolColor(a.pool)}"` : "";
      const executor = escape(a.executor);
      parts.push(
        `<rect class="bar ${kind}${a.attempts > 1 ? " retried" : ""}" x="${x}" y="${y}" width="${bw}" height="${BAR_H}" rx="2"${fill} data-executor="${executor}" data-host="${escape(a.host || "")}" data-superstep="${k}" data-j="${j}"/>`,
      );
      if (bw > a.executor.length * 5.8 + 8) parts.push(`<text class="bar-label" x="${x + 3}" y="${y + 9}">${executor}</text>`);
    });
    if (step.completed) {
      parts.push(`<line class="barrier" x1="${x0 + w}" x2="${x0 + w}" y1="${AXIS_H - 6}" y2="${top + 2}" data-superstep="${k}"/>`);
    }
    return { step, i, count: step.activations.length, completed: step.completed, x0, w, g: null };
  }

  function escape(text) {
    return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
  }

  /** Draws `steps[from..]` after the last superstep drawn: those completed in one group,
   * the last one, while its activations may still come, in a group of its own. */
  function drawSteps(steps, from) {
    let parts = [];
    const flush = () => {
      if (!parts.length) return null;
      const g = s("g");
      g.innerHTML = parts.join("");
      stepLayer.append(g);
      parts = [];
      return g;
    };
    let batch = [];
    const close = () => {
      const g = flush();
      for (const entry of batch) entry.g = g;
      batch = [];
    };
    for (let i = from; i < steps.length; i++) {
      if (i === steps.length - 1 && !steps[i].completed) close();
      const entry = stepMarkup(steps[i], i, end, parts);
      batch.push(entry);
      drawn.push(entry);
      byStep.set(entry.step.k, entry);
      end = entry.x0 + entry.w;
    }
    close();
  }

  /** Removes the last superstep drawn, drawn open (in a group of its own). */
  function undrawOpen() {
    const entry = drawn.pop();
    entry.g.remove();
    byStep.delete(entry.step.k);
    end = entry.x0;
  }

  /** The superstep drawn at `x` (plot pixels), or null. */
  function at(x) {
    let lo = 0;
    let hi = drawn.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const entry = drawn[mid];
      if (x < entry.x0) hi = mid - 1;
      else if (x >= entry.x0 + entry.w) lo = mid + 1;
      else return entry;
    }
    return null;
  }

  /** The superstep under the pointer of `event`. */
  function pointedAt(event) {
    const found = event.target.dataset.superstep;
    if (found !== undefined) return byStep.get(Number(found)) || null;
    const box = hit.getBoundingClientRect();
    return box.width ? at(((event.clientX - box.left) * Number(hit.getAttribute("width"))) / box.width) : null;
  }

  /** The tooltip of a bar. */
  function tip(element) {
    const entry = byStep.get(Number(element.dataset.superstep));
    if (!entry) return null;
    const { step } = entry;
    const { starts } = measure(step);
    const j = Number(element.dataset.j);
    const a = step.activations[j];
    const attempts = a.attempts > 1 ? `, ${a.attempts} attempts` : "";
    const started = starts[j] > 0 ? `started +${formatDuration(starts[j])}, ` : "";
    const outcome = a.kind !== "executor_completed" ? `\n${a.kind.replace("executor_", "")}` : "";
    return `${a.executor} · superstep ${step.k}\n${a.host || "host unknown"} (pool ${a.pool || "?"})\n${started}${formatDuration(a.duration)}${attempts}${outcome}`;
  }

  function update(steps, { width, inFlight = null, selected = null, live = false }) {
    const n = steps.length;
    let from = 0; // the first superstep that is not drawn as it is now
    while (from < drawn.length && from < n && same(drawn[from], steps[from])) from++;
    let grew = false;
    for (let i = from; i < n; i++) grew = countLanes(laneMap, steps[i]) || grew;
    let total = 0;
    for (const step of steps) total += measure(step).span;
    const exact = layoutFor(n, total, [...laneMap.values()], width, inFlight !== null);
    const keep =
      layout !== null &&
      !grew &&
      (from === drawn.length || (from === drawn.length - 1 && !drawn[from].completed)) &&
      layout.width === width &&
      layout.labelW === exact.labelW &&
      (live
        ? near(extent(layout, n, total), extent(exact, n, total))
        : layout.minPx === exact.minPx && layout.scale === exact.scale);
    if (keep) {
      if (from < drawn.length) undrawOpen();
    } else {
      // drawn whole: the lanes of these supersteps only, the layout they get
      layout = exact;
      laneMap = new Map();
      for (const step of steps) countLanes(laneMap, step);
      placeLanes();
      stepLayer.replaceChildren();
      drawn = [];
      byStep = new Map();
      end = 0;
      from = 0;
      svgW = 0;
    }
    drawSteps(steps, from);
    const plotW = Math.max(end + (inFlight !== null ? LIVE_W : 0), 40);
    const height = top + 22;
    // while live the drawing widens by GROW_PX at a time (not on every superstep)
    const wanted = layout.labelW + plotW + 16;
    if (!keep || wanted > svgW || (!live && wanted !== svgW)) {
      svgW = live ? wanted + GROW_PX : wanted;
      setAttrs(svg, { width: svgW, height, viewBox: `0 0 ${svgW} ${height}` });
      if (!keep) drawLanes();
      else for (const row of rows) row.rect.setAttribute("width", svgW);
    }
    setAttrs(plot, { transform: `translate(${layout.labelW} 0)` });
    setAttrs(hit, { width: Math.max(plotW, svgW - layout.labelW), height });
    setAttrs(hover, { height });
    setAttrs(svg, { "aria-label": `Superstep timeline: ${n} supersteps on ${rows.length} hosts` });
    // the superstep selected
    const chosen = selected === null ? undefined : byStep.get(selected);
    if (chosen) {
      setAttrs(selectedRect, { x: chosen.x0, y: AXIS_H - 4, width: chosen.w, height: top - AXIS_H + 6 });
      if (selectedRect.parentNode !== plot) hit.after(selectedRect);
    } else selectedRect.remove();
    if (chosen && chosen.i % layout.labelEvery !== 0) {
      setAttrs(selectedLabel, { x: chosen.x0 + 2 });
      setText(selectedLabel, String(chosen.step.k));
      if (selectedLabel.parentNode !== plot) plot.append(selectedLabel);
    } else selectedLabel.remove();
    // how long 100 pixels of activation are, at the end of the drawing
    if (layout.scale > 0) {
      const y = top + 11;
      setAttrs(scaleLine, { x1: plotW - 100, x2: plotW, y1: y, y2: y });
      setAttrs(scaleText, { x: plotW - 106, y: top + 15 });
      setText(scaleText, `100 px = ${formatDuration(100 / layout.scale)}`);
      if (scaleLine.parentNode !== plot) plot.append(scaleLine, scaleText);
    } else {
      scaleLine.remove();
      scaleText.remove();
    }
    if (inFlight !== null) {
      setAttrs(flightRect, { x: end + 2, y: AXIS_H - 4, width: LIVE_W - 6, height: top - AXIS_H + 6 });
      setAttrs(flightText, { x: end + 4 });
      setText(flightText, `${inFlight} …`);
      if (flightRect.parentNode !== plot) plot.append(flightRect, flightText);
    } else {
      flightRect.remove();
      flightText.remove();
    }
    return layout.labelW + plotW; // where the drawing ends
  }

  // a bar's tooltip is made when it is first pointed at (thousands cost)
  plot.addEventListener("pointerover", (event) => {
    const found = event.target;
    if (found.dataset.j === undefined || found.firstChild) return;
    const text = tip(found);
    if (text) found.append(s("title", null, text));
  });
  plot.addEventListener("pointermove", (event) => {
    const entry = pointedAt(event);
    if (!entry) {
      hover.remove();
      return;
    }
    setAttrs(hover, { x: entry.x0, width: entry.w });
    const { step } = entry;
    const span = formatDuration(measure(step).span);
    setText(hover.firstChild, `superstep ${step.k}: ${step.activations.length} activation(s) over ${span}`);
    if (hover.parentNode !== plot) hit.after(hover);
  });
  plot.addEventListener("pointerleave", () => hover.remove());
  if (onSelect) {
    // one listener for every superstep and bar
    plot.addEventListener("click", (event) => {
      const entry = pointedAt(event);
      if (entry) onSelect(entry.step.k);
    });
  }
  return { element: svg, update };
}

/**
 * Draws the timeline of `steps` at once (see createTimeline) into an SVG `width`
 * pixels wide.
 */
export function drawTimeline(steps, { width, inFlight = null, selected = null, onSelect = null }) {
  const timeline = createTimeline({ onSelect });
  timeline.update(steps, { width, inFlight, selected });
  return timeline.element;
}
