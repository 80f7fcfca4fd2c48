// Runs: every run the deployment knows, newest first, filtered by status and workflow
// (in the page: the API lists them all), a page of them at a time.

import { api } from "./api.js";
import { errorBox, formatDuration, formatTime, h, panel, shortId, statusBadge } from "./dom.js";

const PAGE = 25;
const STATUSES = ["running", "awaiting_input", "completed", "failed", "cancelled", "stalled"];

export function runsPage(main) {
  const controller = new AbortController();
  document.title = "Runs · superstep";
  let runs = [];
  let page = 0;
  const status = h("select", { id: "filter-status" }, h("option", { value: "" }, "any"), STATUSES.map((s) => h("option", { value: s }, s.replace("_", " "))));
  const workflow = h("select", { id: "filter-workflow" }, h("option", { value: "" }, "any"));
  const search = h("input", { id: "filter-id", type: "search", placeholder: "run id contains…", autocomplete: "off", spellcheck: "false" });
  const refresh = h("button", { type: "button" }, "Refresh");
  const body = h("tbody");
  const summary = h("p", { class: "muted", "aria-live": "polite" });
  const prev = h("button", { type: "button" }, "← Newer");
  const next = h("button", { type: "button" }, "Older →");
  const message = h("div");
  main.append(
    h("div", { class: "page-head" }, h("h1", null, "Runs"), refresh),
    panel(
      "Filter",
      { class: "panel filters" },
      h(
        "div",
        { class: "filter-row" },
        h("div", { class: "field" }, h("label", { for: "filter-status" }, "Status"), status),
        h("div", { class: "field" }, h("label", { for: "filter-workflow" }, "Workflow"), workflow),
        h("div", { class: "field grow" }, h("label", { for: "filter-id" }, "Run id"), search),
      ),
    ),
    message,
    h(
      "section",
      { class: "panel", "aria-label": "Runs" },
      h(
        "table",
        { class: "data runs" },
        h(
          "thead",
          null,
          h(
            "tr",
            null,
            ["Run", "Workflow", "Status", "Supersteps", "Started", "Updated", "Duration"].map((t) => h("th", { scope: "col" }, t)),
          ),
        ),
        body,
      ),
      h("div", { class: "pager" }, prev, summary, next),
    ),
  );

  function shown() {
    const needle = search.value.trim().toLowerCase();
    return runs.filter(
      (r) =>
        (!status.value || r.status === status.value) &&
        (!workflow.value || r.workflow === workflow.value) &&
        (!needle || r.run_id.toLowerCase().includes(needle)),
    );
  }

  function draw() {
    const rows = shown();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    page = Math.min(page, pages - 1);
    const slice = rows.slice(page * PAGE, (page + 1) * PAGE);
    const now = Date.now() / 1000;
    body.replaceChildren(
      ...slice.map((r) => {
        const end = r.status === "running" ? now : r.updated_at;
        return h(
          "tr",
          { dataset: { run: r.run_id } },
          h("td", null, h("a", { href: `#/runs/${encodeURIComponent(r.run_id)}`, title: r.run_id }, h("code", null, shortId(r.run_id)))),
          h("td", null, r.workflow),
          h("td", null, statusBadge(r.status)),
          h("td", { class: "num" }, String(r.superstep)),
          h("td", null, formatTime(r.created_at)),
          h("td", null, formatTime(r.updated_at)),
          h("td", { class: "num" }, r.created_at ? formatDuration(end - r.created_at) : "—"),
        );
      }),
    );
    if (!slice.length) body.append(h("tr", null, h("td", { colspan: 7, class: "muted" }, runs.length ? "No run matches." : "No runs yet.")));
    summary.textContent = `${rows.length} of ${runs.length} runs · page ${page + 1} of ${pages}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }

  async function load() {
    try {
      runs = await api("/runs", { signal: controller.signal });
      runs.sort((a, b) => (b.created_at || 0) - (a.created_at || 0) || a.run_id.localeCompare(b.run_id));
      const names = [...new Set(runs.map((r) => r.workflow))].sort();
      const chosen = workflow.value;
      workflow.replaceChildren(h("option", { value: "" }, "any"), names.map((n) => h("option", { value: n, selected: n === chosen }, n)));
      message.replaceChildren();
      draw();
    } catch (error) {
      if (error.name !== "AbortError") message.replaceChildren(errorBox(error));
    }
  }

  for (const control of [status, workflow]) control.addEventListener("change", () => ((page = 0), draw()));
  search.addEventListener("input", () => ((page = 0), draw()));
  prev.addEventListener("click", () => ((page -= 1), draw()));
  next.addEventListener("click", () => ((page += 1), draw()));
  refresh.addEventListener("click", load);
  load();
  const timer = setInterval(load, 5000);
  return {
    stop: () => {
      clearInterval(timer);
      controller.abort();
    },
  };
}
