// The console: chat, models, status and activity of this appliance, from its own API.
import { Unauthorized, getJson, postJson, readEvents, saveKey, savedKey } from "./console-api.js";
import { lineChart } from "./console-chart.js";
import { renderMarkdown } from "./console-markdown.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 3000;
const ACTIVITY_MS = 10000;
const timers = [];
const modelRows = new Map();
const chat = { messages: [], controller: null };

function cell(tag, text, className) {
  const node = document.createElement(tag);
  node.textContent = text ?? "—";
  if (className) node.className = className;
  return node;
}

function showError(id, error) {
  $(id).textContent = error ? String(error.message || error) : "";
}

// Any data call that gets 401 ends here: stop polling, show only the key form.
function handle(id) {
  return (error) => {
    if (error instanceof Unauthorized) askForKey(savedKey() ? "That key was refused." : "");
    else showError(id, error);
  };
}

function askForKey(message) {
  timers.splice(0).forEach(clearInterval);
  $("console").hidden = true;
  $("forget-key").hidden = true;
  $("key-form").hidden = false;
  $("key-error").textContent = message;
  $("api-key").focus();
}

async function open() {
  try {
    await refreshModels();
  } catch (error) {
    if (error instanceof Unauthorized) return askForKey(savedKey() ? "That key was refused." : "");
    showError("models-error", error);
  }
  $("key-form").hidden = true;
  $("console").hidden = false;
  $("forget-key").hidden = !savedKey();
  refreshHealth();
  refreshActivity();
  timers.push(setInterval(() => refreshModels().catch(handle("models-error")), POLL_MS));
  timers.push(setInterval(refreshHealth, POLL_MS));
  timers.push(setInterval(refreshActivity, ACTIVITY_MS));
}

// ---- tabs
function selectTab(tab) {
  for (const other of document.querySelectorAll('[role="tab"]')) {
    const selected = other === tab;
    other.setAttribute("aria-selected", String(selected));
    other.tabIndex = selected ? 0 : -1;
    $(other.getAttribute("aria-controls")).hidden = !selected;
  }
  tab.focus();
  if (tab.id === "tab-activity") refreshBench();
}

function wireTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  tabs.forEach((tab, index) => {
    tab.tabIndex = index ? -1 : 0;
    tab.addEventListener("click", () => selectTab(tab));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (step) selectTab(tabs[(index + step + tabs.length) % tabs.length]);
    });
  });
}

// ---- models
async function refreshModels() {
  const { models } = await getJson("/console/api/models");
  updateModelChoice(models);
  for (const model of models) modelRow(model.id).update(model);
  for (const [id, row] of modelRows) {
    if (!models.some((model) => model.id === id)) {
      row.element.remove();
      modelRows.delete(id);
    }
  }
  showError("models-error", null);
}

function updateModelChoice(models) {
  const select = $("chat-model");
  const ids = models.map((model) => model.id);
  if (ids.join("\n") === [...select.options].map((option) => option.value).join("\n")) return;
  const chosen = select.value;
  select.replaceChildren(...ids.map((id) => new Option(id, id, false, id === chosen)));
}

function modelRow(id) {
  if (modelRows.has(id)) return modelRows.get(id);
  const element = document.createElement("tr");
  const cells = ["th", "td", "td", "td", "td"].map((tag) => cell(tag, ""));
  cells[0].scope = "row";
  cells[0].textContent = id;
  const actions = cell("td", "", "actions");
  const load = cell("button", "Load");
  const unload = cell("button", "Unload");
  load.type = unload.type = "button";
  load.setAttribute("aria-label", `Load ${id}`);
  unload.setAttribute("aria-label", `Unload ${id}`);
  load.addEventListener("click", () => control(id, "load", load));
  unload.addEventListener("click", () => control(id, "unload", unload));
  actions.append(load, unload);
  element.append(...cells, actions);
  $("model-rows").append(element);
  const row = {
    element,
    update(model) {
      cells[1].textContent = model.error ? `${model.state}: ${model.error}` : model.state;
      cells[1].className = `state-${model.state}`;
      const resident = model.state === "ready" || model.state === "loading";
      cells[2].textContent = resident && model.memory_mb ? `${model.memory_mb} MiB` : "—";
      cells[3].textContent = model.slots ? `${model.busy} of ${model.slots}` : String(model.busy);
      cells[4].textContent = String(model.queued);
      load.disabled = load.dataset.busy === "1" || model.state === "ready" || model.state === "loading";
      unload.disabled = unload.dataset.busy === "1" || model.state !== "ready";
    },
  };
  modelRows.set(id, row);
  return row;
}

async function control(id, action, button) {
  button.dataset.busy = "1";
  button.disabled = true;
  showError("models-error", null);
  try {
    await postJson(`/v1/models/${encodeURIComponent(id)}/${action}`);
  } catch (error) {
    handle("models-error")(error);
  } finally {
    button.dataset.busy = "";
    refreshModels().catch(handle("models-error"));
  }
}

// ---- status
function flatten(value, prefix = "", into = []) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, into);
  } else if (Array.isArray(value)) {
    const plain = value.every((item) => item === null || typeof item !== "object");
    into.push([prefix, plain ? value.join(", ") || "none" : JSON.stringify(value)]);
  } else {
    into.push([prefix, value === null || value === undefined ? "—" : String(value)]);
  }
  return into;
}

function statusGroup(title, value) {
  const group = document.createElement("div");
  group.className = "status-group";
  const list = document.createElement("dl");
  for (const [key, text] of flatten(value)) list.append(cell("dt", key), cell("dd", text));
  group.append(cell("h2", title), list);
  return group;
}

async function refreshHealth() {
  const badge = $("health");
  try {
    const health = await getJson("/health");
    badge.textContent = `health: ${health.status}`;
    badge.className = `badge ${health.status === "ok" ? "ok" : "bad"}`;
    renderStatus(health);
  } catch (error) {
    badge.textContent = "unreachable";
    badge.className = "badge bad";
  }
}

function renderStatus(health) {
  const { config = null, backends = null, system = null, update = null } = health;
  const { sync = null, ...served } = config || {};
  const error = served.last_reload_error;
  $("reload-error").hidden = !error;
  $("reload-error-text").textContent = error ? error.message || `at ${error.at} (the message needs a key)` : "";
  const groups = [["Server", { status: health.status }], ["Backends", backends], ["System", system],
    ["Config", config && served], ["Sync", sync], ["Update", update]];
  $("status-groups").replaceChildren(...groups.filter(([, value]) => value).map(([title, value]) =>
    statusGroup(title, value)));
}

// ---- activity and bench runs
const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString();

async function refreshActivity() {
  try {
    const { points, interval_s: interval, kept } = await getJson("/console/api/activity");
    const now = Date.now() / 1000;
    const window = { formatX: clock, xRange: [now - interval * kept, now] }; // the whole window, filling in
    const tokens = points.map((p) => [p.at, p.tokens_per_s]);
    const requests = points.map((p) => [p.at, p.requests_per_min]);
    lineChart($("chart-tokens"), [{ name: "tokens/s", points: tokens }], { label: "tokens per second", ...window });
    lineChart($("chart-requests"), [{ name: "requests/min", points: requests }],
      { label: "requests per minute", ...window });
    showError("activity-error", null);
  } catch (error) {
    handle("activity-error")(error);
  }
}

async function refreshBench() {
  try {
    const { runs } = await getJson("/console/api/bench");
    const series = runs.map((run) => ({ name: `run ${run.id}: ${run.label}`, points: run.throughput }));
    lineChart($("chart-bench"), series, { label: "bench throughput by streams", formatX: (v) => v.toFixed(0) });
    $("bench-rows").replaceChildren(...runs.map((run) => {
      const row = document.createElement("tr");
      const peak = Math.max(0, ...run.throughput.map((p) => p[1]));
      row.append(cell("td", String(run.id)), cell("td", run.started_at), cell("td", run.label),
        cell("td", run.model), cell("td", peak ? peak.toFixed(1) : "—"));
      return row;
    }));
  } catch (error) {
    handle("activity-error")(error);
  }
}

// ---- chat
function chatEntry(role, text) {
  const item = document.createElement("li");
  item.className = role;
  const body = document.createElement("div");
  body.className = "content";
  body.append(role === "assistant" ? renderMarkdown(text) : cell("p", text));
  item.append(cell("span", role === "user" ? "You" : "Assistant", "who"), body);
  $("transcript").append(item);
  return body;
}

function number(id) {
  const value = $(id).valueAsNumber;
  return Number.isFinite(value) ? value : undefined;
}

function chatRequest(history) {
  const system = $("chat-system").value.trim();
  return {
    model: $("chat-model").value,
    messages: [...(system ? [{ role: "system", content: system }] : []), ...history],
    stream: true,
    temperature: number("chat-temperature"),
    top_p: number("chat-top-p"),
    max_tokens: number("chat-max-tokens"),
  };
}

function drawAnswer(body, answer) {
  try {
    body.replaceChildren(renderMarkdown(answer));
  } catch {
    body.replaceChildren(cell("p", answer)); // whatever the renderer meets, the text still shows
  }
}

async function send(event) {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (!text || chat.controller) return;
  input.value = "";
  showError("chat-error", null);
  const history = chat.messages; // this conversation, even if New chat starts another meanwhile
  const controller = (chat.controller = new AbortController());
  history.push({ role: "user", content: text });
  chatEntry("user", text);
  const body = chatEntry("assistant", "");
  let answer = "";
  let pending = false;
  const draw = () => {
    pending = false;
    drawAnswer(body, answer);
  };
  setStreaming(true);
  try {
    const response = await postJson("/v1/chat/completions", chatRequest(history), controller.signal);
    await readEvents(response, (chunk) => {
      if (chunk.error) throw new Error(chunk.error.message || "the stream ended with an error");
      answer += chunk.choices?.[0]?.delta?.content ?? "";
      if (!pending) {
        pending = true;
        requestAnimationFrame(draw);
      }
    });
  } catch (error) {
    if (error.name !== "AbortError") handle("chat-error")(error);
  } finally {
    chat.controller = null;
    setStreaming(false);
    draw();
    // Roles must alternate: a turn with no answer leaves no trace in the conversation.
    if (answer) history.push({ role: "assistant", content: answer });
    else history.pop();
  }
}

function setStreaming(streaming) {
  $("chat-send").disabled = streaming;
  $("chat-stop").disabled = !streaming;
}

function wireChat() {
  $("chat-form").addEventListener("submit", send);
  $("chat-input").addEventListener("keydown", (event) => {
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    $("chat-form").requestSubmit();
  });
  $("chat-stop").addEventListener("click", () => chat.controller?.abort());
  $("chat-clear").addEventListener("click", () => {
    chat.controller?.abort();
    chat.messages = [];
    $("transcript").replaceChildren();
  });
}

// ---- start
$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  saveKey($("api-key").value.trim());
  $("api-key").value = "";
  open();
});
$("forget-key").addEventListener("click", () => {
  saveKey("");
  askForKey("");
});
wireTabs();
wireChat();
open();
