// A run, live: its graph with the executors of a superstep highlighted, the superstep
// timeline (a lane per host), outputs, pending requests with their forms, the failure,
// shared state after each barrier, checkpoints (resume from one), the event log.

import { ApiError, api, readEvents, runPath } from "./api.js";
import {
  clear,
  errorBox,
  formatDuration,
  formatTime,
  h,
  json,
  panel,
  statusBadge,
  typedValue,
} from "./dom.js";
import { FormError, schemaForm } from "./form.js";
import { drawGraph } from "./graph.js";
import { durationsPlot, messagesPlot, stepsPlot } from "./plots.js";
import { drawTimeline } from "./timeline.js";

const FINAL = new Set(["completed", "failed", "cancelled", "stalled"]);
const ACTIVATION_EVENTS = new Set(["executor_completed", "executor_failed", "executor_skipped", "executor_fallback"]);
const LOG_ROWS = 400;
const TABLE_ROWS = 300;
const REDRAW_MS = 400;

const pad6 = (k) => String(k).padStart(6, "0");
const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(timer), resolve()), { once: true });
  });

export function runPage(main, runId) {
  const controller = new AbortController();
  const { signal } = controller;
  document.title = `Run ${runId} · superstep`;
  const model = {
    view: null,
    info: null,
    steps: new Map(), // superstep -> {k, activations, completed, delivered}
    retried: new Map(), // "k/executor" -> failures of attempts before the one reported
    events: [],
    lastId: null,
    outputs: [],
    status: null,
    inFlight: null,
    predicted: null, // {k, executors}: the executors of the superstep in flight
    follow: true,
    selected: null,
    state: null, // {k, state, previous}
    checkpoints: [],
  };
  let graph = null;
  let frame = 0;
  let timelineKey = "";
  let timelineAt = 0;
  let timelineCost = 0;
  let timelineTimer = 0;
  let logShown = 0;
  let outputsShown = 0;

  // -- skeleton -------------------------------------------------------------------------
  const badge = h("span");
  const meta = h("dl", { class: "meta" });
  const cancel = h("button", { type: "button", class: "danger", disabled: true }, "Cancel run");
  const notice = h("div", { "aria-live": "polite" });
  const failure = h("div");
  const requests = h("div");
  const graphBox = h("div", { class: "graph-scroll" });
  const slider = h("input", { id: "superstep-slider", type: "range", min: 0, max: 0, value: 0, disabled: true });
  const sliderOut = h("output", { for: "superstep-slider", class: "step-out" }, "—");
  const followButton = h("button", { type: "button", class: "quiet", "aria-pressed": "true" }, "Follow live");
  const timelineBox = h("div", { class: "timeline-scroll" });
  const timelineNote = h("p", { class: "hint" });
  const activations = h("tbody");
  const activationsDetails = h(
    "details",
    { class: "activations" },
    h("summary", null, "Activations"),
    h(
      "table",
      { class: "data compact" },
      h("thead", null, h("tr", null, ["Superstep", "Executor", "Host", "Pool", "Duration", "Attempts", "Result"].map((t) => h("th", { scope: "col" }, t)))),
      activations,
    ),
  );
  const plotDurations = h("div", { class: "plot-box" });
  const plotSteps = h("div", { class: "plot-box" });
  const plotMessages = h("div", { class: "plot-box" });
  const outputs = h("ol", { class: "outputs" });
  const outputsEmpty = h("p", { class: "muted" }, "No output yet.");
  const stateBox = h("div", { class: "state-view" }, h("p", { class: "muted" }, "Shared state shows after the first barrier."));
  const checkpointList = h("ul", { class: "checkpoints" });
  const logBody = h("tbody");
  const logNote = h("p", { class: "hint" });

  main.append(
    h(
      "div",
      { class: "page-head run-head" },
      h("h1", null, "Run ", h("code", { class: "run-id" }, runId)),
      badge,
      h("div", { class: "spacer" }),
      cancel,
    ),
    meta,
    notice,
    failure,
    requests,
    h(
      "div",
      { class: "grid-2" },
      panel(
        "Graph",
        { class: "panel graph-panel" },
        h(
          "div",
          { class: "step-control" },
          h("label", { for: "superstep-slider" }, "Superstep"),
          slider,
          sliderOut,
          followButton,
        ),
        graphBox,
        h(
          "p",
          { class: "legend" },
          h("span", { class: "legend-item" }, h("span", { class: "swatch node-active" }), "active in the superstep"),
          h("span", { class: "legend-item" }, h("span", { class: "swatch node-ran" }), "ran in the one before"),
          h("span", { class: "legend-item" }, h("span", { class: "swatch node-failed" }), "failed"),
          h("span", { class: "legend-item" }, h("span", { class: "swatch node-waiting" }), "waits for a response"),
        ),
      ),
      panel("Outputs", { class: "panel outputs-panel" }, outputsEmpty, outputs),
    ),
    panel("Timeline", { class: "panel timeline-panel" }, timelineBox, timelineNote, activationsDetails),
    panel(
      "Plots",
      { class: "panel plots-panel" },
      h("h3", null, "Activation durations per executor"),
      plotDurations,
      h("div", { class: "grid-2 plots-row" }, h("div", null, h("h3", null, "Superstep durations (longest activation)"), plotSteps), h("div", null, h("h3", null, "Messages per superstep"), plotMessages)),
      h("p", { class: "hint" }, "A box per executor: quartiles, the median, whiskers to the shortest and longest activation, each activation a dot (log scale when they span orders of magnitude). A superstep lasts as long as its longest activation, plus the barrier, which the events do not time."),
    ),
    h("div", { class: "grid-2" }, panel("Shared state", null, stateBox), panel("Checkpoints", null, checkpointList)),
    panel(
      "Events",
      { class: "panel events-panel" },
      h(
        "div",
        { class: "log-scroll" },
        h(
          "table",
          { class: "data compact log" },
          h("thead", null, h("tr", null, ["Id", "Superstep", "Event", "Executor", "Details"].map((t) => h("th", { scope: "col" }, t)))),
          logBody,
        ),
      ),
      logNote,
    ),
  );

  // -- events -----------------------------------------------------------------------------
  function step(k) {
    let found = model.steps.get(k);
    if (!found) {
      found = { k, activations: [], completed: false, delivered: 0 };
      model.steps.set(k, found);
    }
    return found;
  }

  function apply(ev) {
    model.events.push(ev);
    const k = ev.superstep;
    const d = ev.details || {};
    switch (ev.type) {
      case "superstep_started":
        step(k);
        model.inFlight = k;
        break;
      case "superstep_completed": {
        const st = step(k);
        st.completed = true;
        st.delivered = d.delivered || 0;
        st.activated = (d.activated || []).length;
        st.edges = d.edges || null;
        if (model.inFlight === k) model.inFlight = null;
        break;
      }
      case "executor_retried":
        model.retried.set(`${k}/${ev.executor_id}`, d.failures || []);
        break;
      case "output":
        model.outputs.push(ev);
        break;
      case "status":
        model.status = ev.data;
        if (FINAL.has(ev.data) || ev.data === "awaiting_input") model.inFlight = null;
        break;
      default:
        break;
    }
    if (ACTIVATION_EVENTS.has(ev.type)) {
      const pool = d.pool || poolOf(ev.executor_id);
      step(k).activations.push({
        executor: ev.executor_id,
        host: d.host || null,
        pool,
        duration: d.duration_s ?? null,
        start: d.started_at ?? null,
        attempts: d.attempts || 1,
        kind: ev.type,
        failures: d.failures || model.retried.get(`${k}/${ev.executor_id}`) || [],
      });
      if (ev.type === "executor_failed" && model.inFlight === k) model.inFlight = null;
    }
  }

  function poolOf(executorId) {
    const found = model.info && model.info.executors.find((e) => e.id === executorId);
    return found ? found.pool : null;
  }

  function take(batch) {
    let refresh = false;
    for (const ev of batch) {
      model.lastId = ev.id;
      apply(ev);
      if (["status", "request_info", "failed", "output"].includes(ev.type)) refresh = true;
    }
    const last = batch[batch.length - 1];
    if (last.type === "superstep_started" && model.status !== "awaiting_input") {
      model.status = "running";
      wantBarrier(last.superstep - 1);
    } else if (last.type === "superstep_completed" || last.type === "status") {
      wantBarrier(last.superstep);
    }
    if (refresh) refreshView();
    schedule();
  }

  async function follow() {
    let delay = 250;
    while (!signal.aborted) {
      const before = model.events.length;
      try {
        const how = await readEvents(runId, { lastId: model.lastId, signal, onEvents: take });
        if (how === "done" || FINAL.has(model.status)) break;
        // ended without the run ending (it awaits input; or the connection was cut):
        // ask again, from the last event seen
        if (model.events.length === before) await sleep(delay, signal);
        delay = model.events.length === before ? Math.min(delay * 2, 5000) : 250;
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof ApiError && error.status < 500) {
          notice.replaceChildren(errorBox(error));
          return;
        }
        await sleep(delay, signal);
        delay = Math.min(delay * 2, 5000);
      }
    }
    schedule();
  }

  // -- the run's record, its checkpoints, the state after a barrier ----------------------------
  let viewLoading = null;
  let viewAgain = false;
  async function refreshView() {
    if (viewLoading) {
      viewAgain = true;
      return viewLoading;
    }
    viewLoading = (async () => {
      try {
        do {
          viewAgain = false;
          model.view = await api(runPath(runId), { signal });
          if (!model.status || FINAL.has(model.view.status) || model.view.status === "awaiting_input") model.status = model.view.status;
          model.checkpoints = await api(`${runPath(runId)}/checkpoints`, { signal });
          drawHead();
          drawFailure();
          drawRequests();
          drawCheckpoints();
          schedule();
        } while (viewAgain && !signal.aborted);
      } catch (error) {
        if (!signal.aborted) notice.replaceChildren(errorBox(error));
      } finally {
        viewLoading = null;
      }
    })();
    return viewLoading;
  }

  let barrierWanted = null;
  let barrierLoading = false;
  function wantBarrier(k) {
    if (k === null || k === undefined || k < 0) return;
    barrierWanted = k;
    if (!barrierLoading) loadBarrier();
  }

  async function loadBarrier() {
    barrierLoading = true;
    try {
      while (barrierWanted !== null && !signal.aborted) {
        const k = barrierWanted;
        barrierWanted = null;
        // the checkpoint taken at the barrier after superstep k, when the run has it
        const ids = model.checkpoints.length ? model.checkpoints : (await refreshView(), model.checkpoints);
        let id = `${runId}@${pad6(k)}`;
        if (!ids.includes(id)) {
          await refreshView();
          if (!model.checkpoints.includes(id)) {
            id = model.view && model.view.checkpoints.length ? model.view.checkpoints[0] : null;
          }
        }
        if (!id) continue;
        const cp = await api(`/checkpoints/${encodeURIComponent(id)}`, { signal });
        const rs = cp.run_state || {};
        const previous = model.state && model.state.k < rs.superstep ? model.state.state : null;
        model.state = { k: rs.superstep, id, state: rs.state || {}, previous };
        const targets = [...new Set((rs.inbox || []).map((m) => m.target))];
        model.predicted = { k: rs.superstep + 1, executors: targets };
        drawState();
        schedule();
      }
    } catch (error) {
      if (!signal.aborted && !(error instanceof ApiError && error.status === 404)) notice.replaceChildren(errorBox(error));
    } finally {
      barrierLoading = false;
    }
  }

  // -- drawing ------------------------------------------------------------------------------
  function schedule() {
    if (!frame) frame = requestAnimationFrame(draw);
  }

  function draw() {
    frame = 0;
    if (signal.aborted) return;
    const status = model.status || (model.view && model.view.status);
    badge.replaceChildren(statusBadge(status));
    cancel.disabled = !status || FINAL.has(status);
    drawSteps();
    drawPlots();
    drawOutputs();
    drawLog();
  }

  let plotted = -1; // the activations plotted last
  let plottedAt = 0;
  let plotCost = 0;
  let plotTimer = 0;
  function drawPlots() {
    const steps = ordered();
    const count = model.events.length;
    if (count === plotted) return;
    // while events stream, not every frame: each draw walks every activation
    const wait = plottedAt + Math.min(REDRAW_MS, 4 * plotCost) - performance.now();
    if (wait > 0 && !FINAL.has(model.status)) {
      if (!plotTimer) plotTimer = setTimeout(() => ((plotTimer = 0), schedule()), wait);
      return;
    }
    plotted = count;
    plottedAt = performance.now();
    const all = steps.flatMap((st) => st.activations);
    const width = plotDurations.clientWidth || 900;
    const half = plotSteps.clientWidth || 440;
    plotDurations.replaceChildren(durationsPlot(all, { width }));
    plotSteps.replaceChildren(stepsPlot(steps.filter((st) => st.activations.length), { width: half }));
    plotMessages.replaceChildren(messagesPlot(steps, { width: plotMessages.clientWidth || half }));
    plotCost = performance.now() - plottedAt;
    plottedAt = performance.now();
  }

  function drawHead() {
    const v = model.view;
    if (!v) return;
    const end = FINAL.has(v.status) ? v.updated_at : Date.now() / 1000;
    const target = v.factory || v.workflow;
    const params = v.params && Object.keys(v.params).length ? JSON.stringify(v.params) : null;
    meta.replaceChildren(
      ...[
      item("Workflow", h("a", { href: `#/workflows/${encodeURIComponent(target)}` }, v.workflow)),
      v.factory ? item("Factory", h("code", null, v.factory), params ? h("span", { class: "muted" }, ` ${params}`) : null) : null,
      item("Supersteps", String(v.superstep)),
      item("Started", formatTime(v.created_at)),
      item("Duration", v.created_at ? formatDuration(end - v.created_at) : "—"),
      FINAL.has(v.status) ? item("Trace hash", h("code", null, v.trace_hash.slice(0, 16))) : null,
      ].filter(Boolean),
    );
  }

  function item(term, ...value) {
    return h("div", null, h("dt", null, term), h("dd", null, ...value));
  }

  function drawFailure() {
    const error = model.view && model.view.error;
    clear(failure);
    if (!error) return;
    const cause = error.cause || error;
    const qualified = cause.module && !["builtins", "runtime.errors"].includes(cause.module) ? `${cause.module}.${cause.type}` : cause.type;
    const attempts = cause.attempts || [];
    failure.append(
      h(
        "section",
        { class: "panel failure", "aria-labelledby": "failure-title", role: "alert" },
        h("h2", { id: "failure-title" }, "Failed", cause.executor_id ? [" in ", h("code", null, cause.executor_id)] : null, cause.superstep ? ` · superstep ${cause.superstep}` : null),
        h("p", { class: "exception" }, h("span", { class: "exc-type" }, qualified), h("span", { class: "exc-message" }, cause.message)),
        error.cause ? h("p", { class: "muted" }, error.message) : null,
        attempts.length
          ? h(
              "table",
              { class: "data compact attempts" },
              h("caption", null, "Attempts"),
              h("thead", null, h("tr", null, h("th", { scope: "col" }, "Attempt"), h("th", { scope: "col" }, "Exception"), h("th", { scope: "col" }, "Message"))),
              h(
                "tbody",
                null,
                attempts.map((a) => h("tr", null, h("td", { class: "num" }, String(a.attempt)), h("td", null, h("code", null, a.type)), h("td", null, a.message))),
              ),
            )
          : null,
        cause.traceback ? h("details", { open: true }, h("summary", null, "Traceback"), h("pre", { class: "traceback" }, cause.traceback)) : null,
      ),
    );
  }

  function drawRequests() {
    clear(requests);
    const pending = (model.view && model.view.pending_requests) || [];
    if (!pending.length) return;
    requests.append(
      panel(
        "Waiting for input",
        { class: "panel requests" },
        pending.map((request) => requestForm(request)),
      ),
    );
  }

  function requestForm(request) {
    const form = schemaForm(request.response_schema, { label: `Response (${request.response_type})` });
    const message = h("div", { "aria-live": "polite" });
    const button = h("button", { type: "submit", class: "primary" }, "Send response");
    const element = h(
      "form",
      { class: "request", "aria-label": `Answer request of ${request.executor_id}`, dataset: { request: request.request_id } },
      h(
        "p",
        { class: "request-head" },
        h("code", null, request.executor_id),
        ` asks in superstep ${request.superstep}`,
        h("span", { class: "muted" }, ` · request ${request.request_id}`),
      ),
      typedValue(request.data),
      form.element,
      h("div", { class: "actions" }, button),
      message,
    );
    element.addEventListener("submit", async (event) => {
      event.preventDefault();
      message.replaceChildren();
      let value;
      try {
        value = form.read();
      } catch (error) {
        if (!(error instanceof FormError)) throw error;
        message.append(errorBox(error));
        return;
      }
      button.disabled = true;
      try {
        await api(`${runPath(runId)}/responses`, { method: "POST", body: { responses: { [request.request_id]: value } } });
        model.status = "running";
        message.append(h("p", { class: "ok" }, "Sent: the run resumes."));
        schedule();
      } catch (error) {
        button.disabled = false;
        message.append(errorBox(error));
      }
    });
    return element;
  }

  function drawCheckpoints() {
    const ids = model.checkpoints || [];
    const shown = ids.slice(-200).reverse();
    checkpointList.replaceChildren(
      ...shown.map((id) => {
        const superstep = Number(id.split("@").pop());
        return h(
          "li",
          { dataset: { checkpoint: id } },
          h("span", { class: "cp-step" }, `after superstep ${superstep}`),
          h("code", { class: "cp-id", title: id }, `@${id.split("@").pop()}`),
          h("button", { type: "button", class: "quiet", onclick: () => showCheckpointState(id) }, "State"),
          h("button", { type: "button", onclick: (event) => resume(id, superstep, event.currentTarget) }, "Resume from here"),
        );
      }),
    );
    if (!ids.length) checkpointList.append(h("li", { class: "muted" }, "No checkpoint yet."));
    else if (ids.length > shown.length) checkpointList.append(h("li", { class: "muted" }, `… ${ids.length - shown.length} older`));
  }

  async function showCheckpointState(id) {
    try {
      const cp = await api(`/checkpoints/${encodeURIComponent(id)}`, { signal });
      const rs = cp.run_state || {};
      const index = model.checkpoints.indexOf(id);
      let previous = null;
      if (index > 0) {
        const before = await api(`/checkpoints/${encodeURIComponent(model.checkpoints[index - 1])}`, { signal });
        previous = (before.run_state || {}).state || {};
      }
      model.state = { k: rs.superstep, id, state: rs.state || {}, previous, pinned: true };
      drawState();
    } catch (error) {
      if (!signal.aborted) notice.replaceChildren(errorBox(error));
    }
  }

  async function resume(id, superstep, button) {
    const v = model.view;
    if (!v) return;
    const suffix = `-from-${superstep}-${Math.random().toString(36).slice(2, 8)}`;
    const body = {
      workflow: v.workflow,
      checkpoint_id: id,
      run_id: `${runId.slice(0, 200 - suffix.length)}${suffix}`,
    };
    if (v.factory) {
      body.factory = v.factory;
      body.params = v.params || {};
    }
    button.disabled = true;
    try {
      const started = await api("/runs", { method: "POST", body });
      location.hash = `#/runs/${encodeURIComponent(started.run_id)}`;
    } catch (error) {
      button.disabled = false;
      notice.replaceChildren(errorBox(error));
    }
  }

  function drawState() {
    const st = model.state;
    if (!st) return;
    const keys = [...new Set([...Object.keys(st.previous || {}), ...Object.keys(st.state)])].sort();
    clear(stateBox);
    stateBox.append(
      h(
        "p",
        { class: "hint" },
        `After superstep ${st.k} (checkpoint @${pad6(st.k)})`,
        st.previous ? ", changes since the one before marked" : "",
      ),
    );
    if (!keys.length) {
      stateBox.append(h("p", { class: "muted" }, "The workflow declares no shared state."));
      return;
    }
    stateBox.append(
      h(
        "table",
        { class: "data compact state" },
        h("thead", null, h("tr", null, h("th", { scope: "col" }, "Key"), h("th", { scope: "col" }, "Value"), h("th", { scope: "col" }, "Change"))),
        h(
          "tbody",
          null,
          keys.map((key) => {
            const now = st.state[key];
            const had = st.previous ? st.previous[key] : undefined;
            let change = "";
            if (st.previous) {
              if (!(key in st.state)) change = "removed";
              else if (!(key in st.previous)) change = "added";
              else if (JSON.stringify(now) !== JSON.stringify(had)) change = `was ${JSON.stringify(had)}`;
            }
            return h(
              "tr",
              { class: change ? "changed" : null },
              h("td", null, h("code", null, key)),
              h("td", null, h("pre", { class: "json inline" }, json(now))),
              h("td", { class: "muted" }, change),
            );
          }),
        ),
      ),
    );
  }

  function ordered() {
    return [...model.steps.values()].sort((a, b) => a.k - b.k);
  }

  function drawSteps() {
    const steps = ordered();
    const done = steps.filter((st) => st.activations.length || st.completed);
    if (steps.length) {
      const first = steps[0].k;
      const last = steps[steps.length - 1].k;
      slider.min = String(first);
      slider.max = String(last);
      slider.disabled = first === last;
      if (model.follow) model.selected = model.inFlight !== null ? model.inFlight : (done.length ? done[done.length - 1].k : last);
      slider.value = String(model.selected);
      sliderOut.textContent = `${model.selected}${model.inFlight === model.selected ? " (running)" : ""} of ${last}`;
    }
    followButton.setAttribute("aria-pressed", String(model.follow));
    if (graph) graph.mark(graphStates(), edgeCounts());
    // the timeline and the table walk every superstep: while events stream, they are
    // redrawn at most every REDRAW_MS (a run of 1,000 supersteps has thousands of bars)
    const key = `${done.length}/${model.events.length}/${model.inFlight}/${model.selected}/${timelineBox.clientWidth}`;
    if (key === timelineKey) return;
    // (waiting a few times as long as the last draw took: cheap ones are not delayed)
    const wait = timelineAt + Math.min(REDRAW_MS, 4 * timelineCost) - performance.now();
    if (wait > 0 && !FINAL.has(model.status) && model.follow) {
      if (!timelineTimer) timelineTimer = setTimeout(() => ((timelineTimer = 0), schedule()), wait);
      return;
    }
    timelineKey = key;
    timelineAt = performance.now();
    const width = timelineBox.clientWidth || 900;
    timelineBox.replaceChildren(
      done.length || model.inFlight !== null
        ? drawTimeline(done, {
            width,
            inFlight: model.inFlight,
            selected: model.selected,
            onSelect: (k) => select(k),
          })
        : h("p", { class: "muted" }, "No superstep has run yet."),
    );
    timelineNote.textContent =
      "One lane per host. Each bar is an activation, from when it started on its host (after the superstep's first start) for its duration; dashed lines are the barriers. " +
      "A superstep is drawn as wide as its activations span; the time between supersteps is not drawn.";
    drawActivations(done);
    timelineCost = performance.now() - timelineAt;
    timelineAt = performance.now();
  }

  function drawActivations(done) {
    let count = 0;
    for (const st of done) count += st.activations.length;
    const rows = [];
    for (let i = done.length - 1; i >= 0 && rows.length < TABLE_ROWS; i--) {
      const st = done[i];
      for (let j = st.activations.length - 1; j >= 0 && rows.length < TABLE_ROWS; j--) rows.push({ ...st.activations[j], k: st.k });
    }
    rows.reverse();
    activationsDetails.querySelector("summary").textContent = `Activations (${count}${count > rows.length ? `, the last ${rows.length} listed` : ""})`;
    if (!activationsDetails.open) {
      activations.replaceChildren(); // drawn when opened
      return;
    }
    activations.replaceChildren(
      ...rows.map((a) =>
        h(
          "tr",
          { class: a.kind !== "executor_completed" ? "bad" : null, dataset: { executor: a.executor, superstep: a.k } },
          h("td", { class: "num" }, String(a.k)),
          h("td", null, h("code", null, a.executor)),
          h("td", { class: "host" }, a.host || "—"),
          h("td", null, a.pool || "—"),
          h("td", { class: "num" }, formatDuration(a.duration)),
          h("td", { class: "num" }, String(a.attempts)),
          h("td", null, a.kind.replace("executor_", "")),
        ),
      ),
    );
  }

  function graphStates() {
    const states = new Map();
    const k = model.selected;
    const st = model.steps.get(k);
    const live = model.follow && model.inFlight !== null && k === model.inFlight;
    if (live) {
      const before = model.steps.get(k - 1);
      if (before) for (const a of before.activations) states.set(a.executor, a.kind === "executor_completed" ? "ran" : "failed");
      if (model.predicted && model.predicted.k === k) for (const id of model.predicted.executors) states.set(id, "active");
    } else if (st) {
      const before = model.steps.get(k - 1);
      if (before) for (const a of before.activations) states.set(a.executor, a.kind === "executor_completed" ? "ran" : "failed");
      for (const a of st.activations) states.set(a.executor, a.kind === "executor_completed" ? "active" : "failed");
    }
    const pending = (model.view && model.view.pending_requests) || [];
    if (model.status === "awaiting_input") for (const r of pending) states.set(r.executor_id, "waiting");
    return states;
  }

  /** Messages per edge that reached the selected superstep: those its previous
   * superstep sent ("source→target" -> count); null when the events do not say. */
  function edgeCounts() {
    const before = model.steps.get(model.selected - 1);
    if (!before || !before.edges) return null;
    return new Map(before.edges.map(([source, target, n]) => [`${source}→${target}`, n]));
  }

  function select(k) {
    model.follow = false;
    model.selected = k;
    schedule();
  }

  function drawOutputs() {
    for (const ev of model.outputs.slice(outputsShown)) {
      outputs.append(
        h(
          "li",
          null,
          h("p", { class: "output-head" }, h("code", null, ev.executor_id), ` · superstep ${ev.superstep}`),
          typedValue(ev.data),
        ),
      );
    }
    outputsShown = model.outputs.length;
    outputsEmpty.hidden = outputsShown > 0;
  }

  function drawLog() {
    const fresh = model.events.slice(logShown);
    logShown = model.events.length;
    if (!fresh.length) return;
    const box = logBody.closest(".log-scroll");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
    for (const ev of fresh.slice(-LOG_ROWS)) {
      logBody.append(
        h(
          "tr",
          { class: `ev-${ev.type}` },
          h("td", { class: "num muted" }, ev.id || ""),
          h("td", { class: "num" }, ev.superstep ?? ""),
          h("td", null, h("span", { class: "ev-type" }, ev.type)),
          h("td", null, ev.executor_id ? h("code", null, ev.executor_id) : ""),
          h("td", { class: "ev-details" }, summary(ev)),
        ),
      );
    }
    while (logBody.childElementCount > LOG_ROWS) logBody.firstElementChild.remove();
    logNote.textContent = model.events.length > LOG_ROWS ? `The last ${LOG_ROWS} of ${model.events.length} events.` : `${model.events.length} events.`;
    if (atBottom) box.scrollTop = box.scrollHeight;
  }

  function summary(ev) {
    const d = ev.details || {};
    switch (ev.type) {
      case "executor_completed":
        return `${d.host || "?"} (${d.pool}) · ${formatDuration(d.duration_s)}${d.attempts > 1 ? ` · ${d.attempts} attempts` : ""}`;
      case "executor_failed":
      case "executor_skipped":
      case "executor_fallback":
        return `${d.type}: ${d.error}`;
      case "executor_retried":
        return `${d.attempts} attempts`;
      case "superstep_completed":
        return `${(d.activated || []).length} activated · ${d.delivered} delivered`;
      case "status":
      case "started":
      case "failed":
        return String(ev.data);
      case "request_info":
        return `${ev.data && ev.data.type} → ${d.response_type}`;
      default:
        if (ev.data === null || ev.data === undefined) return Object.keys(d).length ? JSON.stringify(d) : "";
        return JSON.stringify(ev.data).slice(0, 160);
    }
  }

  // -- controls -----------------------------------------------------------------------------
  slider.addEventListener("input", () => select(Number(slider.value)));
  followButton.addEventListener("click", () => {
    model.follow = true;
    schedule();
  });
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      await api(`${runPath(runId)}/cancel`, { method: "POST" });
      notice.replaceChildren(h("p", { class: "ok" }, "Cancelling: the superstep in flight does not commit."));
    } catch (error) {
      notice.replaceChildren(errorBox(error));
    }
  });
  activationsDetails.addEventListener("toggle", () => {
    timelineKey = "";
    schedule();
  });
  const resize = () => schedule();
  window.addEventListener("resize", resize);

  // -- start ------------------------------------------------------------------------------------
  // the events are read from the start, while the run's record and graph load
  follow();
  (async () => {
    try {
      const [view, catalog] = await Promise.all([api(runPath(runId), { signal }), api("/workflows", { signal })]);
      model.view = view;
      model.status = model.status || view.status;
      model.info =
        (view.factory && catalog.find((w) => w.kind === "factory" && w.name === view.factory)) ||
        catalog.find((w) => w.kind === "workflow" && w.name === view.workflow) ||
        catalog.find((w) => w.workflow === view.workflow) ||
        null;
      if (model.info && model.info.executors.length) {
        graph = drawGraph(model.info, { label: `Graph of ${view.workflow}` });
        graphBox.replaceChildren(graph.element);
        if (view.factory && view.params && Object.keys(view.params).length) {
          graphBox.append(h("p", { class: "hint" }, "The graph as the factory builds it with its defaults; this run's parameters may change it."));
        }
      } else {
        graphBox.replaceChildren(h("p", { class: "muted" }, "This deployment does not describe the run's graph."));
      }
      drawHead();
      drawFailure();
      drawRequests();
      model.checkpoints = await api(`${runPath(runId)}/checkpoints`, { signal });
      drawCheckpoints();
      schedule();
    } catch (error) {
      if (signal.aborted) return;
      clear(main);
      main.append(h("div", { class: "page-head" }, h("h1", null, "Run ", h("code", null, runId))), errorBox(error));
    }
  })();
  const ticker = setInterval(() => {
    if (model.view && !FINAL.has(model.status)) drawHead();
  }, 1000);

  return {
    stop: () => {
      controller.abort();
      clearInterval(ticker);
      window.removeEventListener("resize", resize);
      if (frame) cancelAnimationFrame(frame);
      if (plotTimer) clearTimeout(plotTimer);
      if (timelineTimer) clearTimeout(timelineTimer);
    },
  };
}
