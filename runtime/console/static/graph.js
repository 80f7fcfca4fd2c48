// A workflow's graph as SVG: executors in layers from the start executor (left to
// right, by longest path over the forward edges), edges as curves, edges back to an
// earlier layer routed underneath.

import { s } from "./dom.js";

const PALETTE = ["#2563eb", "#0d9488", "#9333ea", "#c2410c", "#be185d", "#4d7c0f", "#0369a1", "#a16207"];

/** A stable colour per pool name (the same in the graph and the timeline). */
export function poolColor(pool) {
  let hash = 0;
  for (const ch of String(pool)) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  return pool === "default" ? PALETTE[0] : PALETTE[1 + (hash % (PALETTE.length - 1))];
}

function edgeLabel(group, index) {
  if (group.kind === "switch_case") return index === group.targets.length - 1 ? "default" : `case ${index}`;
  if (group.kind === "multi_selection") return "select";
  if (group.kind === "edge" && group.conditional) return "if";
  if (group.kind === "fan_out" && group.conditional) return "select";
  return "";
}

/** The links of a catalog entry's edge groups: {source, target, kind, label}. */
export function links(info) {
  const out = [];
  for (const group of info.edges || []) {
    if (group.kind === "fan_in") {
      for (const source of group.sources) out.push({ source, target: group.targets[0], kind: "fan_in", label: "" });
    } else {
      group.targets.forEach((target, i) =>
        out.push({ source: group.sources[0], target, kind: group.kind, label: edgeLabel(group, i) }),
      );
    }
  }
  return out;
}

/** Layers and positions of the nodes. */
export function layout(info, extraIds = []) {
  const ids = [...info.executors.map((e) => e.id), ...extraIds.filter((id) => !info.executors.some((e) => e.id === id))];
  const all = links(info).filter((l) => ids.includes(l.source) && ids.includes(l.target));
  const out = new Map(ids.map((id) => [id, []]));
  for (const link of all) out.get(link.source).push(link);
  // edges back to a node on the depth-first path are drawn as back edges
  const seen = new Map();
  const finished = [];
  const visit = (root) => {
    const stack = [[root, 0]];
    seen.set(root, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const [node, i] = top;
      const edges = out.get(node);
      if (i < edges.length) {
        top[1] += 1;
        const link = edges[i];
        const state = seen.get(link.target);
        if (state === 1) link.back = true;
        else if (!state) {
          seen.set(link.target, 1);
          stack.push([link.target, 0]);
        }
      } else {
        seen.set(node, 2);
        finished.push(node);
        stack.pop();
      }
    }
  };
  for (const id of [info.start, ...ids]) if (id && out.has(id) && !seen.get(id)) visit(id);
  const layer = new Map(ids.map((id) => [id, 0]));
  for (const node of finished.reverse()) {
    for (const link of out.get(node)) {
      if (!link.back) layer.set(link.target, Math.max(layer.get(link.target), layer.get(node) + 1));
    }
  }
  const columns = [];
  for (const id of ids) (columns[layer.get(id)] ||= []).push(id);
  for (let c = 0; c < columns.length; c++) columns[c] ||= [];
  // order each column by the mean position of its predecessors (two sweeps)
  const position = new Map();
  columns.forEach((col) => col.forEach((id, i) => position.set(id, i)));
  for (let sweep = 0; sweep < 2; sweep++) {
    for (let c = 1; c < columns.length; c++) {
      const score = (id) => {
        const preds = all.filter((l) => l.target === id && !l.back && layer.get(l.source) < c);
        if (!preds.length) return position.get(id);
        return preds.reduce((sum, l) => sum + position.get(l.source), 0) / preds.length;
      };
      const scores = new Map(columns[c].map((id) => [id, score(id)]));
      columns[c].sort((a, b) => scores.get(a) - scores.get(b));
      columns[c].forEach((id, i) => position.set(id, i));
    }
  }
  const longest = Math.max(8, ...ids.map((id) => id.length));
  const width = Math.min(210, Math.max(104, longest * 7.4 + 28));
  const tallest = Math.max(1, ...columns.map((c) => c.length));
  const height = tallest > 14 ? 30 : 42;
  const gapY = tallest > 14 ? 8 : 18;
  const gapX = 64;
  const nodes = new Map();
  const totalHeight = tallest * (height + gapY) - gapY;
  columns.forEach((col, c) => {
    const colHeight = col.length * (height + gapY) - gapY;
    const top = (totalHeight - colHeight) / 2;
    col.forEach((id, i) => {
      nodes.set(id, { id, x: c * (width + gapX), y: top + i * (height + gapY), w: width, h: height });
    });
  });
  return { nodes, links: all, width: columns.length * (width + gapX) - gapX, height: totalHeight, compact: tallest > 14 };
}

/**
 * Draws the graph; returns {element, mark(states)} where `states` maps an executor id
 * to one of "active", "ran", "failed", "waiting" (others are drawn idle).
 */
export function drawGraph(info, { extraIds = [], label = "Workflow graph" } = {}) {
  const { nodes, links: all, width, height, compact } = layout(info, extraIds);
  const pad = 24;
  const below = all.some((l) => l.back && l.source !== l.target) ? 46 : 0;
  const above = all.some((l) => l.source === l.target) ? 26 : 0;
  const vw = Math.max(width + pad * 2, 200);
  const vh = height + pad * 2 + below + above;
  const svg = s("svg", {
    class: "graph",
    viewBox: `${-pad} ${-pad - above} ${vw} ${vh}`,
    role: "img",
    "aria-label": label,
    style: `max-width: ${vw * 1.15}px`,
  });
  const markerId = `arrow-${Math.random().toString(36).slice(2, 8)}`;
  svg.append(
    s(
      "defs",
      null,
      s(
        "marker",
        { id: markerId, viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
        s("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }),
      ),
    ),
  );
  const edgeLayer = s("g", { class: "edges" });
  const nodeLayer = s("g", { class: "nodes" });
  svg.append(edgeLayer, nodeLayer);
  const info_ = new Map(info.executors.map((e) => [e.id, e]));
  for (const link of all) {
    const a = nodes.get(link.source);
    const b = nodes.get(link.target);
    let d;
    let lx;
    let ly;
    if (link.source === link.target) {
      const x = a.x + a.w / 2;
      d = `M ${x - 14} ${a.y} C ${x - 30} ${a.y - 30}, ${x + 30} ${a.y - 30}, ${x + 14} ${a.y}`;
      lx = x;
      ly = a.y - 26;
    } else if (link.back) {
      const x1 = a.x + a.w / 2;
      const x2 = b.x + b.w / 2;
      const y1 = a.y + a.h;
      const y2 = b.y + b.h;
      const low = Math.max(y1, y2) + 34;
      d = `M ${x1} ${y1} C ${x1} ${low}, ${x2} ${low}, ${x2} ${y2}`;
      lx = (x1 + x2) / 2;
      ly = low - 4;
    } else {
      const x1 = a.x + a.w;
      const y1 = a.y + a.h / 2;
      const x2 = b.x;
      const y2 = b.y + b.h / 2;
      const mid = (x1 + x2) / 2;
      d = `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2} ${y2}`;
      lx = mid;
      ly = (y1 + y2) / 2 - 4;
    }
    const edge = s("path", {
      d,
      class: `edge kind-${link.kind}${link.back ? " back" : ""}`,
      "marker-end": `url(#${markerId})`,
      dataset: { source: link.source, target: link.target },
    });
    edge.append(s("title", null, `${link.source} → ${link.target} (${link.kind.replace("_", "-")})`));
    edgeLayer.append(edge);
    if (link.label) edgeLayer.append(s("text", { x: lx, y: ly, class: "edge-label", "text-anchor": "middle" }, link.label));
    // the messages that went along it into the superstep shown (mark() fills it in)
    edgeLayer.append(s("text", { x: lx, y: ly + (link.label ? 12 : 0), class: "edge-count", "text-anchor": "middle", dataset: { edge: `${link.source}→${link.target}` } }));
  }
  for (const node of nodes.values()) {
    const ex = info_.get(node.id) || { id: node.id, pool: "?", labels: {}, placeable: true };
    const start = node.id === info.start;
    const g = s("g", {
      class: `node${start ? " start" : ""}${ex.placeable === false ? " unplaceable" : ""}`,
      transform: `translate(${node.x} ${node.y})`,
      dataset: { executor: node.id },
    });
    const labels = Object.entries(ex.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    g.append(
      s("title", null, `${node.id}\npool ${ex.pool}${labels ? ` (${labels})` : ""}${start ? "\nstart executor" : ""}${ex.placeable === false ? "\nno live host serves it" : ""}`),
      s("rect", { class: "box", width: node.w, height: node.h, rx: 7 }),
      s("rect", { class: "pool-stripe", width: 5, height: node.h - 2, x: 1, y: 1, rx: 2, fill: poolColor(ex.pool) }),
      s("text", { class: "node-id", x: 14, y: compact ? node.h / 2 + 4.5 : 18 }, node.id),
    );
    if (!compact) g.append(s("text", { class: "node-pool", x: 14, y: 33 }, `${ex.pool}${start ? " · start" : ""}`));
    nodeLayer.append(g);
  }
  /** Highlight executors by state (executor id -> active | ran | failed | waiting) and
   * write on each edge how many messages went along it (`counts`: "source→target" ->
   * count; edges without messages stay blank; null clears them). */
  function mark(states, counts = null) {
    for (const text of edgeLayer.querySelectorAll("text.edge-count")) {
      const n = counts ? counts.get(text.dataset.edge) : undefined;
      text.textContent = n ? `${n} msg${n === 1 ? "" : "s"}` : "";
    }
    for (const g of nodeLayer.children) {
      const state = states.get(g.dataset.executor);
      for (const name of ["active", "ran", "failed", "waiting"]) g.classList.toggle(`state-${name}`, state === name);
    }
    for (const edge of edgeLayer.querySelectorAll("path.edge")) {
      edge.classList.toggle("hot", states.get(edge.dataset.target) === "active" && states.get(edge.dataset.source) === "ran");
    }
  }
  return { element: svg, mark };
}
