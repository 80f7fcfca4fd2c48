// The run console: hash routes to the pages, and the API token field.
//   #/workflows[/<name>]   what the deployment serves; start a run
//   #/runs                 runs, filtered
//   #/runs/<id>            one run, live

import { consoleSettings, setToken, token } from "./api.js";
import { clear, h } from "./dom.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";
import { workflowsPage } from "./workflows.js";

const main = document.getElementById("main");
const tokenForm = document.getElementById("token-form");
const tokenInput = document.getElementById("token");
const tokenState = document.getElementById("token-state");
const signOut = document.getElementById("token-clear");
let settings = { token_required: false };
let current = null; // the page shown: {stop()}

function route() {
  const hash = decodeURIComponent(location.hash.replace(/^#\/?/, ""));
  const [section, ...rest] = hash.split("/");
  return { section: section || "workflows", arg: rest.join("/") || null };
}

function showTokenState() {
  const has = Boolean(token());
  tokenState.textContent = has ? "token set" : settings.token_required ? "token needed" : "";
  tokenState.className = `token-state ${has ? "ok" : settings.token_required ? "needed" : ""}`;
  signOut.hidden = !has;
  tokenInput.placeholder = has ? "•••••• (set)" : "Bearer token";
}

function render() {
  if (current) current.stop();
  current = null;
  clear(main);
  const { section, arg } = route();
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (settings.token_required && !token()) {
    document.title = "Sign in · superstep";
    main.append(
      h(
        "section",
        { class: "panel signin" },
        h("h1", null, "This API wants a token"),
        h(
          "p",
          null,
          "Enter the API token (SUPERSTEP_API_TOKEN) in the field at the top right. ",
          "It is kept for this browser tab only and sent as an Authorization header.",
        ),
      ),
    );
    tokenInput.focus();
    return;
  }
  if (section === "runs" && arg) current = runPage(main, arg);
  else if (section === "runs") current = runsPage(main);
  else current = workflowsPage(main, arg);
}

tokenForm.addEventListener("submit", (event) => {
  event.preventDefault();
  setToken(tokenInput.value.trim());
  tokenInput.value = "";
  showTokenState();
  render();
});

signOut.addEventListener("click", () => {
  setToken("");
  showTokenState();
  render();
});

window.addEventListener("hashchange", () => {
  render();
  main.focus({ preventScroll: true });
});

settings = await consoleSettings();
showTokenState();
render();
