// Workflows: what the deployment serves, each with its graph and placement, the live
// hosts, and a form (from the input's JSON schema) that starts a run.

import { api } from "./api.js";
import { errorBox, h, panel } from "./dom.js";
import { FormError, field, schemaForm } from "./form.js";
import { drawGraph, poolColor } from "./graph.js";

export function workflowsPage(main, selectedName) {
  const controller = new AbortController();
  document.title = "Workflows · superstep";
  const list = h("nav", { class: "wf-list", "aria-label": "Workflows" }, h("p", { class: "muted" }, "Loading…"));
  const detail = h("div", { class: "wf-detail" });
  main.append(
    h("div", { class: "page-head" }, h("h1", null, "Workflows")),
    h("div", { class: "split" }, h("aside", { class: "panel list-panel" }, list), detail),
  );
  Promise.all([api("/workflows", { signal: controller.signal }), api("/hosts", { signal: controller.signal })])
    .then(([workflows, hosts]) => {
      list.replaceChildren(...workflowLinks(workflows, selectedName));
      const chosen = workflows.find((w) => w.name === selectedName) || workflows.find((w) => w.executors.length) || workflows[0];
      if (!chosen) {
        detail.append(h("p", { class: "muted" }, "This deployment serves no workflow (SUPERSTEP_WORKFLOWS)."));
        return;
      }
      for (const link of list.querySelectorAll("a")) {
        if (link.dataset.name === chosen.name) link.setAttribute("aria-current", "true");
      }
      detail.append(...workflowDetail(chosen), hostsPanel(hosts));
    })
    .catch((error) => {
      if (error.name !== "AbortError") list.replaceChildren(errorBox(error));
    });
  return { stop: () => controller.abort() };
}

function workflowLinks(workflows, selectedName) {
  const groups = [
    ["Served by name", workflows.filter((w) => w.kind === "workflow")],
    ["Factories", workflows.filter((w) => w.kind === "factory")],
  ];
  return groups
    .filter(([, items]) => items.length)
    .map(([title, items]) =>
      h(
        "div",
        { class: "wf-group" },
        h("h2", null, title),
        h(
          "ul",
          null,
          items.map((w) =>
            h(
              "li",
              null,
              h(
                "a",
                {
                  href: `#/workflows/${encodeURIComponent(w.name)}`,
                  dataset: { name: w.name },
                  "aria-current": w.name === selectedName ? "true" : null,
                },
                h("span", { class: "wf-name" }, w.kind === "factory" ? w.name.split(":").pop() : w.name),
                h(
                  "span",
                  { class: "wf-meta" },
                  w.kind === "factory" ? w.name.split(":")[0] : `${w.executors.length} executors`,
                ),
              ),
            ),
          ),
        ),
      ),
    );
}

function workflowDetail(info) {
  const out = [];
  const params = info.parameters || [];
  out.push(
    h(
      "div",
      { class: "wf-title" },
      h("h2", null, info.name),
      h("span", { class: "badge kind" }, info.kind === "factory" ? "factory" : "workflow"),
      info.workflow && info.workflow !== info.name ? h("span", { class: "muted" }, `builds “${info.workflow}”`) : null,
    ),
  );
  if (info.description) out.push(h("p", { class: "description" }, info.description));
  if (info.executors.length) {
    const graph = drawGraph(info, { label: `Graph of ${info.name}` });
    const pools = [...new Set(info.executors.map((e) => e.pool))];
    out.push(
      panel(
        "Graph",
        { class: "panel graph-panel" },
        params.length ? h("p", { class: "hint" }, "As the factory builds it with its defaults.") : null,
        h("div", { class: "graph-scroll" }, graph.element),
        h(
          "p",
          { class: "legend" },
          pools.map((p) => h("span", { class: "legend-item" }, h("span", { class: "swatch", style: `background:${poolColor(p)}` }), `pool ${p}`)),
        ),
      ),
      panel(
        "Placement",
        null,
        h(
          "table",
          { class: "data" },
          h("thead", null, h("tr", null, h("th", null, "Executor"), h("th", null, "Pool"), h("th", null, "Labels"), h("th", null, "Live host"))),
          h(
            "tbody",
            null,
            info.executors.map((e) =>
              h(
                "tr",
                null,
                h("td", null, h("code", null, e.id), e.id === info.start ? h("span", { class: "tag" }, "start") : null),
                h("td", null, e.pool),
                h("td", null, Object.entries(e.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "—"),
                h("td", null, e.placeable ? h("span", { class: "ok" }, "yes") : h("span", { class: "warn" }, "none")),
              ),
            ),
          ),
        ),
      ),
    );
  } else {
    out.push(h("p", { class: "muted" }, "Its graph depends on its required parameters: it is known once a run starts."));
  }
  out.push(startPanel(info));
  return out;
}

function startPanel(info) {
  const params = (info.parameters || []).map((p) => [
    p.name,
    field(p.json_schema || {}, p.json_schema || {}, {
      label: p.name,
      required: p.required,
      initial: p.required ? undefined : p.default,
      hint: p.type ? `${Array.isArray(p.type) ? p.type.join(" | ") : p.type}${p.required ? ", required" : ""}` : null,
    }),
  ]);
  const input = schemaForm(info.input_schema, { label: "Input" });
  const runId = h("input", { id: "start-run-id", type: "text", autocomplete: "off", spellcheck: "false", placeholder: "generated", pattern: "[A-Za-z0-9_.:\\-]{1,200}" });
  const message = h("div", { class: "form-message", "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "primary" }, "Start run");
  const form = h(
    "form",
    { class: "start-form", "aria-label": `Start a run of ${info.name}` },
    params.length ? h("fieldset", { class: "object params" }, h("legend", null, "Parameters"), params.map(([, f]) => f.element)) : null,
    input.element,
    h("div", { class: "field" }, h("label", { for: "start-run-id" }, "Run id (optional)"), runId),
    h("div", { class: "actions" }, button),
    message,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    message.replaceChildren();
    let body;
    try {
      body = info.kind === "factory" ? { factory: info.name, params: {} } : { workflow: info.name };
      for (const [name, f] of params) {
        const value = f.read();
        if (value !== undefined) body.params[name] = value;
      }
      body.input = input.read();
      if (runId.value.trim()) body.run_id = runId.value.trim();
    } catch (error) {
      if (!(error instanceof FormError)) throw error;
      message.append(errorBox(error));
      return;
    }
    button.disabled = true;
    try {
      const started = await api("/runs", { method: "POST", body });
      location.hash = `#/runs/${encodeURIComponent(started.run_id)}`;
    } catch (error) {
      message.append(errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return panel("Start a run", { class: "panel start-panel" }, form);
}

function hostsPanel(hosts) {
  const now = Date.now() / 1000;
  const rows = [...hosts].sort((a, b) => a.pool.localeCompare(b.pool) || String(a.app_id || a.host_id).localeCompare(String(b.app_id || b.host_id)));
  return panel(
    "Hosts",
    null,
    rows.length
      ? h(
          "table",
          { class: "data" },
          h("thead", null, h("tr", null, h("th", null, "Host"), h("th", null, "Pool"), h("th", null, "Labels"), h("th", null, "State"), h("th", null, "Heartbeat"))),
          h(
            "tbody",
            null,
            rows.map((host) =>
              h(
                "tr",
                null,
                h("td", null, h("code", null, host.host_id || host.app_id)),
                h("td", null, h("span", { class: "swatch", style: `background:${poolColor(host.pool)}` }), host.pool),
                h("td", null, Object.entries(host.labels || {}).map(([k, v]) => `${k}=${v}`).join(", ") || "—"),
                h("td", null, host.alive ? h("span", { class: "ok" }, "alive") : h("span", { class: "warn" }, "gone")),
                h("td", null, host.heartbeat_at ? `${Math.max(0, now - host.heartbeat_at).toFixed(1)} s ago` : "—"),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "No executor host has registered."),
  );
}
