// A run, live: its graph with the executors of a superstep highlighted, the superstep
// timeline (a lane per host), outputs, pending requests with their forms, the failure,
// shared state after each barrier, checkpoints (resume from one), the event log.
//
// Events change the model only; the page is drawn once per animation frame (however
// many events came in it), and each part only where it changed: the timeline and the
// activations table get the supersteps added, the checkpoints those taken, the shared
// state the keys that changed; the event log draws the rows in view. Nothing is
// measured while drawing (the widths come from a ResizeObserver, where a panel is
// scrolled to from its scroll events), so a frame lays the page out once.

import { ApiError, api, readEvents, runPath } from "./api.js";
import {
  clear,
  errorBox,
  formatDuration,
  formatTime,
  h,
  json,
  panel,
  setAttrs,
  setText,
  statusBadge,
  typedValue,
} from "./dom.js";
import { FormError, schemaForm } from "./form.js";
import { drawGraph } from "./graph.js";
import { durationsPlot, messagesPlot, stepsPlot, throughputPlot } from "./plots.js";
import { createTimeline } from "./timeline.js";

const FINAL = new Set(["completed", "failed", "cancelled", "stalled"]);
const ACTIVATION_EVENTS = new Set(["executor_completed", "executor_failed", "executor_skipped", "executor_fallback"]);
const LOG_VIEW_PX = 360; // the height of the event log (console.css: .log-scroll)
const TABLE_ROWS = 300;
const CHECKPOINT_ROWS = 200;
const REDRAW_MS = 400; // while live, the plots are redrawn at most this often

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
    order: [], // the supersteps in order
    activations: [], // every activation, in the order reported
    retried: new Map(), // "k/executor" -> failures of attempts before the one reported
    events: [],
    lastId: null,
    streaming: true, // the events are still being read
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
  let outputsShown = 0;
  // parts to draw again in the next frame (the others follow the model by themselves)
  const dirty = { head: false, failure: false, requests: false, checkpoints: false, state: false };

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
  const timelineNote = h(
    "p",
    { class: "hint" },
    "One lane per host. Each bar is an activation, from when it started on its host (after the superstep's first start) for its duration; dashed lines are the barriers. " +
      "A superstep is drawn as wide as its activations span; the time between supersteps is not drawn.",
  );
  const activationsSummary = h("summary", null, "Activations");
  const activations = h("tbody");
  const activationsDetails = h(
    "details",
    { class: "activations" },
    activationsSummary,
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
  const plotThroughput = h("div", { class: "plot-box" });
  const outputs = h("ol", { class: "outputs" });
  const outputsEmpty = h("p", { class: "muted" }, "No output yet.");
  const stateBox = h("div", { class: "state-view" }, h("p", { class: "muted" }, "Shared state shows after the first barrier."));
  const checkpointList = h("ul", { class: "checkpoints" });
  const plotsPanel = panel(
    "Plots",
    { class: "panel plots-panel" },
    h("h3", null, "Activation durations per executor"),
    plotDurations,
    h("div", { class: "grid-2 plots-row" }, h("div", null, h("h3", null, "Superstep durations (longest activation)"), plotSteps), h("div", null, h("h3", null, "Messages per superstep"), plotMessages)),
    h("h3", null, "Throughput: messages delivered over the run"),
    plotThroughput,
    h("p", { class: "hint" }, "A box per executor: quartiles, the median, whiskers to the shortest and longest activation, each activation a dot (log scale when they span orders of magnitude). A superstep lasts as long as its longest activation, plus the barrier, which the events do not time. Throughput: the running total of messages delivered at the end of each superstep (its last activation's end, by the hosts' clocks), and their rate over the run."),
  );
  const logBody = h("tbody");
  const logBox = h(
    "div",
    { class: "log-scroll" },
    h(
      "table",
      { class: "data compact log" },
      h("thead", null, h("tr", null, ["Id", "Superstep", "Event", "Executor", "Details"].map((t) => h("th", { scope: "col" }, t)))),
      logBody,
    ),
  );
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
    plotsPanel,
    h("div", { class: "grid-2" }, panel("Shared state", null, stateBox), panel("Checkpoints", null, checkpointList)),
    panel(
      "Events",
      { class: "panel events-panel" },
      logBox,
      logNote,
    ),
  );

  // -- events -----------------------------------------------------------------------------
  function step(k) {
    let found = model.steps.get(k);
    if (!found) {
      found = { k, activations: [], completed: false, delivered: 0 };
      model.steps.set(k, found);
      // (they come in order; a resumed run's may start anywhere)
      let at = model.order.length;
      while (at > 0 && model.order[at - 1].k > k) at--;
      model.order.splice(at, 0, found);
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
      const activation = {
        k,
        executor: ev.executor_id,
        host: d.host || null,
        pool,
        duration: d.duration_s ?? null,
        start: d.started_at ?? null,
        attempts: d.attempts || 1,
        kind: ev.type,
        failures: d.failures || model.retried.get(`${k}/${ev.executor_id}`) || [],
      };
      step(k).activations.push(activation);
      model.activations.push(activation);
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
    await read();
    model.streaming = false;
    schedule();
  }

  async function read() {
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
          Object.assign(dirty, { head: true, failure: true, requests: true, checkpoints: true });
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
        dirty.state = true;
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
    if (badge.firstChild?.dataset.status !== String(status)) badge.replaceChildren(statusBadge(status));
    cancel.disabled = !status || FINAL.has(status);
    if (dirty.head) drawHead();
    if (dirty.failure) drawFailure();
    if (dirty.requests) drawRequests();
    if (dirty.checkpoints) drawCheckpoints();
    if (dirty.state) drawState();
    drawSteps();
    drawPlots();
    drawOutputs();
    drawLog();
    // scrolling last: it lays the page out, once
    scrollToEnds();
  }

  /** Whether more events may come: the timeline keeps its layout while they do. */
  function live() {
    return model.streaming;
  }

  // the widths of the panels drawn into, as laid out (read here, not while drawing)
  const widths = new Map();
  const resized = new ResizeObserver((entries) => {
    for (const entry of entries) widths.set(entry.target, entry.target.clientWidth);
    schedule();
  });
  const widthOf = (box, otherwise) => widths.get(box) || otherwise;
  // whether the log and the plots are on screen: while the run is live, what is not is
  // drawn when it comes into view (or the run ends), not on every event
  const onScreen = new Map();
  const seen = new IntersectionObserver((entries) => {
    for (const entry of entries) onScreen.set(entry.target, entry.isIntersecting);
    schedule();
  });
  const offScreen = (box) => live() && onScreen.get(box) === false;

  // parts drawn at most every REDRAW_MS while events stream: when each was drawn last
  // (the timeline of an ended run waits for its events from the start), their timers
  const drawnAt = { plots: 0, timeline: performance.now() };
  const timers = {};
  /** Whether `part` waits before it is drawn again (a frame is asked for when it may). */
  function waits(part) {
    const wait = drawnAt[part] + REDRAW_MS - performance.now();
    if (wait <= 0) return false;
    timers[part] ||= setTimeout(() => {
      timers[part] = 0;
      schedule();
    }, wait);
    return true;
  }

  let plotted = -1; // the activations plotted last
  let plotWidths = "";
  function drawPlots() {
    if (offScreen(plotsPanel)) return;
    const count = model.activations.length + model.order.length;
    const sizes = [plotDurations, plotSteps, plotMessages, plotThroughput].map((box) => widthOf(box, 0)).join();
    if (count === plotted && sizes === plotWidths) return;
    // while events stream, not every frame: each draw walks every activation
    if (live() && sizes === plotWidths && waits("plots")) return;
    plotted = count;
    plotWidths = sizes;
    drawnAt.plots = performance.now();
    const steps = model.order;
    const width = widthOf(plotDurations, 900);
    const half = widthOf(plotSteps, 440);
    plotDurations.replaceChildren(durationsPlot(model.activations, { width }));
    plotSteps.replaceChildren(stepsPlot(steps.filter((st) => st.activations.length), { width: half }));
    plotMessages.replaceChildren(messagesPlot(steps, { width: widthOf(plotMessages, half) }));
    plotThroughput.replaceChildren(throughputPlot(steps, { width }));
  }

  let headShown = "";
  function drawHead() {
    dirty.head = false;
    const v = model.view;
    if (!v) return;
    const end = FINAL.has(v.status) ? v.updated_at : Date.now() / 1000;
    const target = v.factory || v.workflow;
    const params = v.params && Object.keys(v.params).length ? JSON.stringify(v.params) : null;
    const duration = v.created_at ? formatDuration(end - v.created_at) : "—";
    const key = JSON.stringify([target, v.workflow, params, v.superstep, v.created_at, duration, FINAL.has(v.status) && v.trace_hash]);
    if (key === headShown) return;
    headShown = key;
    meta.replaceChildren(
      ...[
      item("Workflow", h("a", { href: `#/workflows/${encodeURIComponent(target)}` }, v.workflow)),
      v.factory ? item("Factory", h("code", null, v.factory), params ? h("span", { class: "muted" }, ` ${params}`) : null) : null,
      item("Supersteps", String(v.superstep)),
      item("Started", formatTime(v.created_at)),
      item("Duration", duration),
      FINAL.has(v.status) ? item("Trace hash", h("code", null, v.trace_hash.slice(0, 16))) : null,
      ].filter(Boolean),
    );
  }

  function item(term, ...value) {
    return h("div", null, h("dt", null, term), h("dd", null, ...value));
  }

  let failureShown = "null";
  function drawFailure() {
    dirty.failure = false;
    const error = model.view && model.view.error;
    const key = JSON.stringify(error || null);
    if (key === failureShown) return;
    failureShown = key;
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

  let requestsShown = "";
  function drawRequests() {
    dirty.requests = false;
    const pending = (model.view && model.view.pending_requests) || [];
    // (drawn again only when they change: a form keeps what was typed into it)
    const key = pending.map((r) => r.request_id).join("\n");
    if (key === requestsShown) return;
    requestsShown = key;
    clear(requests);
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

  const checkpointItems = new Map(); // id -> its item, for the newest CHECKPOINT_ROWS
  const checkpointsNote = h("li", { class: "muted" });
  function drawCheckpoints() {
    dirty.checkpoints = false;
    const ids = model.checkpoints || [];
    const shown = ids.slice(-CHECKPOINT_ROWS);
    const wanted = new Set(shown);
    for (const [id, li] of checkpointItems) {
      if (!wanted.has(id)) {
        li.remove();
        checkpointItems.delete(id);
      }
    }
    // newest first, each in its place (those listed already stay where they are)
    let at = checkpointList.firstChild;
    for (let i = shown.length - 1; i >= 0; i--) {
      let li = checkpointItems.get(shown[i]);
      if (!li) {
        li = checkpointItem(shown[i]);
        checkpointItems.set(shown[i], li);
      }
      if (li === at) at = at.nextSibling;
      else checkpointList.insertBefore(li, at);
    }
    setText(checkpointsNote, !ids.length ? "No checkpoint yet." : ids.length > shown.length ? `… ${ids.length - shown.length} older` : "");
    if (!checkpointsNote.textContent) checkpointsNote.remove();
    else if (checkpointList.lastChild !== checkpointsNote) checkpointList.append(checkpointsNote);
  }

  function checkpointItem(id) {
    const superstep = Number(id.split("@").pop());
    return h(
      "li",
      { dataset: { checkpoint: id } },
      h("span", { class: "cp-step" }, `after superstep ${superstep}`),
      h("code", { class: "cp-id", title: id }, `@${id.split("@").pop()}`),
      h("button", { type: "button", class: "quiet", onclick: () => showCheckpointState(id) }, "State"),
      h("button", { type: "button", onclick: (event) => resume(id, superstep, event.currentTarget) }, "Resume from here"),
    );
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
      dirty.state = true;
      schedule();
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

  const stateHint = h("p", { class: "hint" });
  const stateEmpty = h("p", { class: "muted" }, "The workflow declares no shared state.");
  const stateRows = h("tbody");
  const stateTable = h(
    "table",
    { class: "data compact state" },
    h("thead", null, h("tr", null, h("th", { scope: "col" }, "Key"), h("th", { scope: "col" }, "Value"), h("th", { scope: "col" }, "Change"))),
    stateRows,
  );
  const stateShown = new Map(); // key -> {tr, pre, note, value, change}
  function drawState() {
    dirty.state = false;
    const st = model.state;
    if (!st) return;
    if (stateHint.parentNode !== stateBox) stateBox.replaceChildren(stateHint);
    setText(stateHint, `After superstep ${st.k} (checkpoint @${pad6(st.k)})${st.previous ? ", changes since the one before marked" : ""}`);
    const keys = [...new Set([...Object.keys(st.previous || {}), ...Object.keys(st.state)])].sort();
    const [shown, hidden] = keys.length ? [stateTable, stateEmpty] : [stateEmpty, stateTable];
    hidden.remove();
    if (shown.parentNode !== stateBox) stateBox.append(shown);
    const wanted = new Set(keys);
    for (const [key, row] of stateShown) {
      if (!wanted.has(key)) {
        row.tr.remove();
        stateShown.delete(key);
      }
    }
    // a row per key, in order; only the cells that changed are written
    let at = stateRows.firstChild;
    for (const key of keys) {
      const now = st.state[key];
      const value = json(now);
      let change = "";
      if (st.previous) {
        const had = st.previous[key];
        if (!(key in st.state)) change = "removed";
        else if (!(key in st.previous)) change = "added";
        else if (JSON.stringify(now) !== JSON.stringify(had)) change = `was ${JSON.stringify(had)}`;
      }
      let row = stateShown.get(key);
      if (!row) {
        const pre = h("pre", { class: "json inline" });
        const note = h("td", { class: "muted" });
        row = { tr: h("tr", null, h("td", null, h("code", null, key)), h("td", null, pre), note), pre, note, value: null, change: null };
        stateShown.set(key, row);
      }
      if (row.value !== value) row.pre.textContent = row.value = value;
      if (row.change !== change) {
        row.note.textContent = row.change = change;
        row.tr.classList.toggle("changed", Boolean(change));
      }
      if (row.tr === at) at = at.nextSibling;
      else stateRows.insertBefore(row.tr, at);
    }
  }

  // -- the supersteps: slider, graph, timeline, activations --------------------------------------
  const timeline = createTimeline({ onSelect: (k) => select(k) });
  const timelineEmpty = h("p", { class: "muted" }, "No superstep has run yet.");
  let graphShown = "";
  let timelineAtEnd = true; // scrolled to its end (it then keeps up with the run)
  let timelineEnd = 0; // where the drawing ends, in pixels
  let timelineScrolled = -1; // where this page scrolled the timeline to last

  function drawSteps() {
    const steps = model.order;
    const done = steps.filter((st) => st.activations.length || st.completed);
    if (steps.length) {
      const first = steps[0].k;
      const last = steps[steps.length - 1].k;
      if (model.follow) model.selected = model.inFlight !== null ? model.inFlight : done.length ? done[done.length - 1].k : last;
      setAttrs(slider, { min: first, max: last });
      slider.disabled = first === last;
      if (slider.value !== String(model.selected)) slider.value = String(model.selected);
      setText(sliderOut, `${model.selected}${model.inFlight === model.selected ? " (running)" : ""} of ${last}`);
    }
    setAttrs(followButton, { "aria-pressed": model.follow });
    if (graph) {
      const states = graphStates();
      const counts = edgeCounts();
      const key = JSON.stringify([[...states], counts && [...counts]]);
      if (key !== graphShown) {
        graphShown = key;
        graph.mark(states, counts);
      }
    }
    // (an ended run's events are read at once: drawn when they are, or every REDRAW_MS)
    if (live() && FINAL.has(model.status) && waits("timeline")) return;
    drawnAt.timeline = performance.now();
    if (!done.length && model.inFlight === null) {
      if (timelineEmpty.parentNode !== timelineBox) timelineBox.replaceChildren(timelineEmpty);
    } else {
      const width = widthOf(timelineBox, 900);
      timelineEnd = timeline.update(done, { width, inFlight: model.inFlight, selected: model.selected, live: live() });
      if (timeline.element.parentNode !== timelineBox) timelineBox.replaceChildren(timeline.element);
    }
    drawActivations(done);
  }

  // the rows of the activations table: the last TABLE_ROWS activations, drawn when open
  const tableRows = []; // [{a, tr}] in order
  function drawActivations(done) {
    let count = 0;
    for (const st of done) count += st.activations.length;
    const listed = Math.min(count, TABLE_ROWS);
    setText(activationsSummary, `Activations (${count}${count > listed ? `, the last ${listed} listed` : ""})`);
    if (!activationsDetails.open) {
      if (tableRows.length) {
        tableRows.length = 0;
        activations.replaceChildren(); // drawn when opened
      }
      return;
    }
    const rows = [];
    for (let i = done.length - 1; i >= 0 && rows.length < TABLE_ROWS; i--) {
      const st = done[i];
      for (let j = st.activations.length - 1; j >= 0 && rows.length < TABLE_ROWS; j--) rows.push(st.activations[j]);
    }
    rows.reverse();
    // those listed already stay: the ones gone from the front are removed, new ones appended
    const kept = tableRows.findIndex((row) => row.a === rows[0]);
    const stays = kept >= 0 && tableRows.slice(kept).every((row, i) => row.a === rows[i]);
    if (!stays) {
      tableRows.length = 0;
      activations.replaceChildren();
    } else {
      for (const row of tableRows.splice(0, kept)) row.tr.remove();
    }
    for (const a of rows.slice(tableRows.length)) {
      const tr = h(
        "tr",
        { class: a.kind !== "executor_completed" ? "bad" : null, dataset: { executor: a.executor, superstep: a.k } },
        h("td", { class: "num" }, String(a.k)),
        h("td", null, h("code", null, a.executor)),
        h("td", { class: "host" }, a.host || "—"),
        h("td", null, a.pool || "—"),
        h("td", { class: "num" }, formatDuration(a.duration)),
        h("td", { class: "num" }, String(a.attempts)),
        h("td", null, a.kind.replace("executor_", "")),
      );
      tableRows.push({ a, tr });
      activations.append(tr);
    }
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

  // The log lists every event, but draws only the rows in view (and a few around
  // them): gaps above and below stand for the others, each row being as high as the
  // first one drawn (one line: the cells do not wrap).
  let logAtBottom = true; // scrolled to its end (it then keeps up with the run)
  let logScroll = 0; // where it is scrolled to, from its scroll events
  let logRowH = 26;
  let logFirst = 0; // the events drawn: [logFirst, logLast)
  let logLast = 0;
  let logGrew = false;
  let logEvents = 0; // the events there were when the log was drawn
  let logDrawnH = 0; // the row height it was drawn with
  const logRows = []; // the rows drawn, in order
  const gapAbove = h("tr", { class: "log-gap", "aria-hidden": "true" }, h("td", { colspan: 5 }));
  const gapBelow = h("tr", { class: "log-gap", "aria-hidden": "true" }, h("td", { colspan: 5 }));
  logBody.append(gapAbove, gapBelow);
  let logMeasured = false;
  const rowSize = new ResizeObserver((entries) => {
    const height = entries[0].target.getBoundingClientRect().height;
    if (height > 0) {
      rowSize.disconnect();
      logRowH = height;
      schedule();
    }
  });

  function drawLog() {
    const n = model.events.length;
    setText(logNote, `${n} events.`);
    if (offScreen(logBox)) return;
    // at its end, the rows in view (a few new ones each frame while events stream);
    // elsewhere a few more above and below, to scroll into
    const inView = Math.ceil(LOG_VIEW_PX / logRowH) + 1;
    const around = logAtBottom ? 0 : 8;
    const rows = inView + 2 * around;
    const first = logAtBottom ? Math.max(0, n - rows) : Math.max(0, Math.min(n - rows, Math.floor(logScroll / logRowH) - around));
    const last = Math.min(n, first + rows);
    if (first === logFirst && last === logLast && n === logEvents && logRowH === logDrawnH) return;
    logGrew = last > logLast;
    // the rows no longer in view go, those come into view are drawn
    while (logRows.length && (logFirst < first || logFirst >= last)) {
      logRows.shift().remove();
      logFirst += 1;
    }
    while (logRows.length && (logLast > last || logLast <= first)) {
      logRows.pop().remove();
      logLast -= 1;
    }
    if (!logRows.length) logFirst = logLast = first;
    for (let i = logFirst - 1; i >= first; i--) {
      const tr = logRow(model.events[i]);
      gapAbove.after(tr);
      logRows.unshift(tr);
    }
    for (let i = logLast; i < last; i++) {
      const tr = logRow(model.events[i]);
      gapBelow.before(tr);
      logRows.push(tr);
    }
    if (!logMeasured && logRows.length) {
      logMeasured = true;
      rowSize.observe(logRows[0]);
    }
    logFirst = first;
    logLast = last;
    logEvents = n;
    logDrawnH = logRowH;
    gapAbove.firstChild.style.height = `${first * logRowH}px`;
    gapBelow.firstChild.style.height = `${(n - last) * logRowH}px`;
    gapAbove.hidden = first === 0;
    gapBelow.hidden = last === n;
  }

  function logRow(ev) {
    const details = summary(ev);
    return h(
      "tr",
      { class: `ev-${ev.type}` },
      h("td", { class: "num muted" }, ev.id || ""),
      h("td", { class: "num" }, ev.superstep ?? ""),
      h("td", null, h("span", { class: "ev-type" }, ev.type)),
      h("td", null, ev.executor_id ? h("code", null, ev.executor_id) : ""),
      h("td", { class: "ev-details", title: details.length > 60 ? details : null }, details),
    );
  }

  /** Keeps the log, and the timeline of a live run, scrolled to their ends when they
   * were (the user scrolling away stops it). */
  function scrollToEnds() {
    if (logGrew && logAtBottom) logBox.scrollTop = logBox.scrollHeight;
    logGrew = false;
    if (live() && model.follow && timelineAtEnd && timeline.element.parentNode === timelineBox) {
      const left = Math.max(0, Math.ceil(timelineEnd + 24 - widthOf(timelineBox, 900)));
      if (left !== timelineScrolled) timelineBox.scrollLeft = timelineScrolled = left;
    }
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
    timelineAtEnd = true;
    schedule();
  });
  logBox.addEventListener(
    "scroll",
    () => {
      logScroll = logBox.scrollTop;
      logAtBottom = logBox.scrollHeight - logScroll - logBox.clientHeight < logRowH;
      schedule();
    },
    { passive: true },
  );
  timelineBox.addEventListener("scroll", () => (timelineAtEnd = timelineBox.scrollLeft + timelineBox.clientWidth >= timelineEnd - 8), { passive: true });
  cancel.addEventListener("click", async () => {
    cancel.disabled = true;
    try {
      await api(`${runPath(runId)}/cancel`, { method: "POST" });
      notice.replaceChildren(h("p", { class: "ok" }, "Cancelling: the superstep in flight does not commit."));
    } catch (error) {
      notice.replaceChildren(errorBox(error));
    }
  });
  activationsDetails.addEventListener("toggle", () => schedule());
  for (const box of [timelineBox, plotDurations, plotSteps, plotMessages, plotThroughput]) resized.observe(box);
  for (const box of [plotsPanel, logBox]) seen.observe(box);

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
      Object.assign(dirty, { head: true, failure: true, requests: true });
      schedule();
      model.checkpoints = await api(`${runPath(runId)}/checkpoints`, { signal });
      dirty.checkpoints = true;
      schedule();
    } catch (error) {
      if (signal.aborted) return;
      clear(main);
      main.append(h("div", { class: "page-head" }, h("h1", null, "Run ", h("code", null, runId))), errorBox(error));
    }
  })();
  const ticker = setInterval(() => {
    if (model.view && !FINAL.has(model.status)) {
      dirty.head = true;
      schedule();
    }
  }, 1000);

  return {
    stop: () => {
      controller.abort();
      clearInterval(ticker);
      resized.disconnect();
      seen.disconnect();
      rowSize.disconnect();
      if (frame) cancelAnimationFrame(frame);
      for (const timer of Object.values(timers)) clearTimeout(timer);
    },
  };
}
