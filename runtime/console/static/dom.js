// Small helpers: building HTML and SVG elements, and formatting values.

const SVG_NS = "http://www.w3.org/2000/svg";

function setAttributes(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "class") el.setAttribute("class", value);
    else if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "text") el.textContent = value;
    // through CSSOM: the page's content security policy refuses style attributes
    else if (key === "style") el.style.cssText = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
}

function appendChildren(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** An HTML element: h("a", {href: "#/runs"}, "Runs"). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttributes(el, attrs);
  appendChildren(el, children);
  return el;
}

/** An SVG element. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttributes(el, attrs);
  appendChildren(el, children);
  return el;
}

/** Sets the attributes of `el` that differ from `attrs` (leaves the rest alone). */
export function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    const text = String(value);
    if (el.getAttribute(key) !== text) el.setAttribute(key, text);
  }
  return el;
}

/** Sets the text of `el` when it differs. */
export function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** A panel: a titled section of a page. */
export function panel(title, attrs, ...children) {
  const id = `panel-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return h(
    "section",
    { class: "panel", "aria-labelledby": id, ...attrs },
    h("h2", { id }, title),
    ...children,
  );
}

export function statusBadge(status) {
  const label = String(status || "unknown").replace("_", " ");
  return h("span", { class: `badge status-${status}`, "data-status": status }, label);
}

// made once, when first used: toLocaleTimeString() makes a formatter on every call,
// which takes milliseconds (the runs page and a run's head format times every second)
let formats = null;

export function formatTime(epochSeconds) {
  if (!epochSeconds) return "—";
  formats ||= {
    time: new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit", second: "2-digit" }),
    day: new Intl.DateTimeFormat([]),
  };
  const date = new Date(epochSeconds * 1000);
  const today = new Date();
  const time = formats.time.format(date);
  if (date.toDateString() === today.toDateString()) return time;
  return `${formats.day.format(date)} ${time}`;
}

export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
  if (seconds < 0.001) return `${(seconds * 1e6).toFixed(0)} µs`;
  if (seconds < 1) return `${(seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1)} ms`;
  if (seconds < 120) return `${seconds.toFixed(2)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 120) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function json(value) {
  return JSON.stringify(value, null, 2);
}

/** A value as the API shows it ({type, value}) in a small block. */
export function typedValue(typed) {
  if (typed && typeof typed === "object" && "type" in typed && "value" in typed) {
    return h(
      "div",
      { class: "typed" },
      h("span", { class: "type-name" }, typed.type),
      h("pre", { class: "json" }, json(typed.value)),
    );
  }
  return h("pre", { class: "json" }, json(typed));
}

export function shortId(runId) {
  return runId.length > 14 ? `${runId.slice(0, 12)}…` : runId;
}

export function errorBox(error) {
  return h("p", { class: "error-box", role: "alert" }, error instanceof Error ? error.message : String(error));
}
