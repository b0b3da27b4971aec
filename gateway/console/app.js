// The Sluice console: one page, no build step, no external code. Every request goes to the gateway's own API
// with the credentials given at log in (kept in this tab's sessionStorage, sent as an Authorization header —
// never a cookie, so no other site can make the browser act with them).
"use strict";

const $ = (selector, root = document) => root.querySelector(selector);

/** Text made safe to put in HTML. */
function esc(value) {
  return String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function authorization() {
  return sessionStorage.getItem("sluice-authorization");
}

/** A request to the gateway with the session's credentials; a 401 ends the session. */
async function api(path, options = {}) {
  // X-Sluice-Console: a refusal then comes without the browser's own password prompt.
  const headers = Object.assign({ Authorization: authorization(), "X-Sluice-Console": "1" }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    logout("The gateway did not accept the credentials.");
    throw new Error("unauthorised");
  }
  return response;
}

/** The `error` of an API answer, or its status. */
async function errorOf(response) {
  try {
    const body = await response.json();
    return body.error || `${response.status}`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function json(path) {
  const response = await api(path);
  if (!response.ok) throw new Error(await errorOf(response));
  return response.json();
}

function logout(message) {
  sessionStorage.removeItem("sluice-authorization");
  $("#nav").hidden = true;
  $("#view").innerHTML = "";
  $("#login").hidden = false;
  $("#login-error").textContent = message || "";
  $("#login-password").focus();
}

async function login(event) {
  event.preventDefault();
  const user = $("#login-user").value.trim();
  const password = $("#login-password").value;
  const value = user ? "Basic " + btoa(`${user}:${password}`) : "Bearer " + password;
  const response = await fetch("/system/functions", { headers: { Authorization: value, "X-Sluice-Console": "1" } });
  if (!response.ok) {
    $("#login-error").textContent = response.status === 401 ? "Wrong user or password." : await errorOf(response);
    return;
  }
  sessionStorage.setItem("sluice-authorization", value);
  $("#login-password").value = "";
  start();
}

function start() {
  $("#login").hidden = true;
  $("#nav").hidden = false;
  if (!location.hash) location.hash = "#/functions";
  route();
}

// --- pages -----------------------------------------------------------------------------------------------

/** The open live stream of a call page, closed when the page changes. */
let following = null;

/** Counts page changes: a page whose data arrives after the next page began is not drawn. */
let generation = 0;

function stale(drawn) {
  return drawn !== generation;
}

async function route() {
  if (!authorization()) return logout();
  if (following) following.abort();
  following = null;
  generation += 1;
  const [path] = location.hash.split("?");
  const [, page, id] = path.split("/");
  for (const link of document.querySelectorAll("nav a")) {
    link.toggleAttribute("aria-current", link.getAttribute("href") === `#/${page}`);
    if (link.hasAttribute("aria-current")) link.setAttribute("aria-current", "page");
  }
  const view = $("#view");
  try {
    if (page === "functions") await functionsPage(view);
    else if (page === "calls" && id) await callPage(view, decodeURIComponent(id));
    else if (page === "calls") await callsPage(view);
    else if (page === "dead") await deadPage(view);
    else if (page === "events") await eventsPage(view);
    else if (page === "health") await healthPage(view);
    else location.hash = "#/functions";
  } catch (error) {
    if (error.message !== "unauthorised") view.innerHTML = `<p class="error" role="alert">${esc(error.message)}</p>`;
  }
}

async function functionsPage(view) {
  const drawn = generation;
  // The newest calls of every function in one request: each row's recent error rate, waiting calls and last call.
  const [functions, recent] = await Promise.all([json("/system/functions"), json("/system/calls?limit=500")]);
  if (stale(drawn)) return;
  const byFunction = new Map();
  for (const call of recent) {
    if (!byFunction.has(call.function)) byFunction.set(call.function, []);
    byFunction.get(call.function).push(call);
  }
  const summary = (name) => {
    const calls = byFunction.get(name) || [];
    const ended = calls.filter((c) => ["succeeded", "failed"].includes(c.status));
    const failed = ended.filter((c) => c.status === "failed").length;
    return {
      rate: ended.length ? `${Math.round((100 * failed) / ended.length)}% of ${ended.length}` : "",
      waiting: calls.filter((c) => c.status === "queued" || c.status === "running").length,
      last: calls[0],
    };
  };
  view.innerHTML = `
    <h2>Functions</h2>
    <table id="functions-table">
      <caption class="visually-hidden">Deployed functions</caption>
      <thead><tr><th>Name</th><th>Runtime</th><th>Image or process</th><th>Replicas ready / wanted</th>
        <th>Invocations</th><th>Failed, of recent calls</th><th>Waiting or running</th><th>Last call</th>
        <th><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>${functions.map((f) => {
        const s = summary(f.name);
        return `
        <tr data-function="${esc(f.name)}">
          <td><a href="#/calls?function=${encodeURIComponent(f.name)}">${esc(f.name)}</a></td>
          <td>${esc(f.runtime || (f.image ? "docker" : "process"))}</td>
          <td><code>${esc(f.image || f.envProcess || f.upstream || "")}</code></td>
          <td>${esc(f.availableReplicas ?? "")} / ${esc(f.replicas ?? "")}</td>
          <td>${esc(f.invocationCount ?? 0)}</td>
          <td class="error-rate">${esc(s.rate)}</td>
          <td class="waiting">${esc(s.waiting)}</td>
          <td>${s.last ? `<a href="#/calls/${encodeURIComponent(s.last.callId)}" class="status-${esc(s.last.status)}">${esc(s.last.status)}</a>` : ""}</td>
          <td><button type="button" class="delete" data-name="${esc(f.name)}">Delete ${esc(f.name)}</button></td>
        </tr>`;
      }).join("")}</tbody>
    </table>
    <p>Failures and waiting calls are counted over the 500 newest calls.</p>
    <h3>Deploy</h3>
    <form id="deploy-form">
      <label for="deploy-spec">Function spec (JSON or YAML, as <code>POST /system/functions</code> takes it)</label>
      <textarea id="deploy-spec" aria-describedby="deploy-error" spellcheck="false">{"service": "", "envProcess": "cat"}</textarea>
      <button type="submit" id="deploy-button">Deploy</button>
      <p class="error" role="alert" id="deploy-error"></p>
    </form>`;
  $("#deploy-form").addEventListener("submit", deploy);
  for (const button of view.querySelectorAll("button.delete")) {
    button.addEventListener("click", async () => {
      if (!confirm(`Delete ${button.dataset.name}?`)) return;
      const response = await api("/system/functions", {
        method: "DELETE",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ functionName: button.dataset.name }),
      });
      if (!response.ok) return alert(await errorOf(response));
      route();
    });
  }
}

async function deploy(event) {
  event.preventDefault();
  const field = $("#deploy-spec");
  const error = $("#deploy-error");
  // JSON when it parses as JSON, else YAML: the gateway reads either and names the faulty field.
  let type = "application/json";
  try {
    JSON.parse(field.value);
  } catch {
    type = "application/yaml";
  }
  const send = (method) => api("/system/functions", { method, headers: { "Content-Type": type }, body: field.value });
  const response = await send("POST");
  if (response.status === 409) {
    // Deployed already: update it.
    const update = await send("PUT");
    if (!update.ok) return showDeployError(await errorOf(update));
  } else if (!response.ok) {
    return showDeployError(await errorOf(response));
  }
  field.removeAttribute("aria-invalid");
  error.textContent = "";
  route();
}

function showDeployError(message) {
  const field = $("#deploy-spec");
  $("#deploy-error").textContent = message;
  field.setAttribute("aria-invalid", "true");
  field.focus();
}

async function callsPage(view) {
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  const params = new URLSearchParams();
  for (const key of ["function", "status", "since"]) if (query.get(key)) params.set(key, query.get(key));
  params.set("limit", "100");
  const drawn = generation;
  const calls = await json(`/system/calls?${params}`);
  if (stale(drawn)) return;
  view.innerHTML = `
    <h2>Calls</h2>
    <form class="filters" id="calls-filter">
      <div><label for="filter-function">Function</label><input id="filter-function" value="${esc(query.get("function") || "")}"></div>
      <div><label for="filter-status">Status</label>
        <select id="filter-status">${["", "queued", "running", "succeeded", "failed", "cancelled"].map((s) =>
          `<option value="${s}" ${s === (query.get("status") || "") ? "selected" : ""}>${s || "any"}</option>`).join("")}</select></div>
      <div><label for="filter-since">Made since</label>
        <input id="filter-since" type="datetime-local" step="1" value="${esc(localInput(query.get("since")))}"></div>
      <button type="submit">Filter</button>
    </form>
    <table id="calls-table">
      <thead><tr><th>Call</th><th>Function</th><th>Status</th><th>Attempts</th><th>Created</th><th>Progress</th></tr></thead>
      <tbody>${calls.map((c) => `
        <tr data-call="${esc(c.callId)}">
          <td><a href="#/calls/${encodeURIComponent(c.callId)}"><code>${esc(c.callId)}</code></a></td>
          <td>${esc(c.function)}</td>
          <td class="status-${esc(c.status)}">${esc(c.status)}</td>
          <td>${esc(c.attempts)}</td>
          <td>${esc(c.createdAt)}</td>
          <td>${c.progress && c.progress.percent != null ? esc(Math.round(c.progress.percent)) + "%" : ""}</td>
        </tr>`).join("")}</tbody>
    </table>`;
  $("#calls-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if ($("#filter-function").value) next.set("function", $("#filter-function").value);
    if ($("#filter-status").value) next.set("status", $("#filter-status").value);
    if ($("#filter-since").value) next.set("since", new Date($("#filter-since").value).toISOString());
    location.hash = `#/calls?${next}`;
  });
}

/** An RFC 3339 time as a datetime-local input's value, in the browser's time zone. */
function localInput(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  return new Date(at.getTime() - at.getTimezoneOffset() * 60000).toISOString().slice(0, 19);
}

async function callPage(view, id) {
  const drawn = generation;
  const record = await json(`/system/calls/${encodeURIComponent(id)}`);
  if (stale(drawn)) return;
  view.innerHTML = `
    <h2>Call <code>${esc(id)}</code></h2>
    <p>Function <strong>${esc(record.function)}</strong> · status <strong id="call-status">${esc(record.status)}</strong>
      · attempt <span id="call-attempts">${esc(record.attempts)}</span></p>
    <p><label for="call-progress">Progress</label>
      <progress id="call-progress" max="100"></progress> <span id="call-percent"></span>
      <span id="call-message"></span></p>
    <p>
      <button type="button" id="cancel-button">Cancel</button>
      <button type="button" id="result-button">Download result</button>
      <span id="call-note" role="status"></span>
    </p>
    <h3>Lineage</h3>
    <ul id="call-lineage"></ul>
    <h3>Changes</h3>
    <ol class="events" id="call-events"></ol>
    <h3>Record</h3>
    <pre id="call-record"></pre>`;
  show(record);
  $("#cancel-button").addEventListener("click", async () => {
    const response = await api(`/system/calls/${encodeURIComponent(id)}`, { method: "DELETE" });
    $("#call-note").textContent = response.ok ? "Cancelled." : await errorOf(response);
  });
  $("#result-button").addEventListener("click", async () => {
    const response = await api(`/system/calls/${encodeURIComponent(id)}/result`);
    if (!response.ok) return ($("#call-note").textContent = await errorOf(response));
    const link = document.createElement("a");
    link.href = URL.createObjectURL(await response.blob());
    link.download = `${id}.result`;
    link.click();
  });
  follow(id);
}

/** Puts a call record on its page. */
function show(record) {
  $("#call-status").textContent = record.status;
  $("#call-status").className = `status-${record.status}`;
  $("#call-attempts").textContent = record.attempts;
  const progress = record.progress || {};
  if (progress.percent != null) {
    $("#call-progress").value = progress.percent;
    $("#call-percent").textContent = `${Math.round(progress.percent)}%`;
  } else {
    $("#call-progress").removeAttribute("value");
  }
  $("#call-message").textContent = progress.message || "";
  $("#cancel-button").disabled = ["succeeded", "failed", "cancelled"].includes(record.status) && !(record.children || []).length;
  const lineage = [];
  if (record.parentCallId) lineage.push(`<li>Parent: <a href="#/calls/${encodeURIComponent(record.parentCallId)}">${esc(record.parentCallId)}</a></li>`);
  for (const child of record.children || []) lineage.push(`<li>Started: <a href="#/calls/${encodeURIComponent(child)}">${esc(child)}</a></li>`);
  $("#call-lineage").innerHTML = lineage.join("") || "<li>None</li>";
  $("#call-record").textContent = JSON.stringify(record, null, 2);
}

/** Follows a call's event stream (Server-Sent Events read through fetch, so the credentials go as a header). */
async function follow(id) {
  const controller = new AbortController();
  following = controller;
  let response;
  try {
    response = await api(`/system/calls/${encodeURIComponent(id)}/events`, { signal: controller.signal });
  } catch {
    return;
  }
  if (!response.ok || !response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let name = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
        }
        if (!data.length) continue;
        const item = document.createElement("li");
        item.textContent = `${new Date().toLocaleTimeString()} ${name}`;
        $("#call-events")?.append(item);
        if (name === "end") return;
        try {
          show(JSON.parse(data.join("\n")));
        } catch {
          /* a keep-alive or a message that is not a record */
        }
      }
    }
  } catch {
    /* the page changed or the gateway went away */
  }
}

async function deadPage(view) {
  const drawn = generation;
  const dead = await json("/system/dead?limit=200");
  if (stale(drawn)) return;
  view.innerHTML = `
    <h2>Dead letters</h2>
    <p><button type="button" id="replay-selected">Replay selected</button>
      <button type="button" id="discard-selected">Discard selected</button>
      <span id="replay-result" role="status"></span></p>
    <table id="dead-table">
      <thead><tr><th><input type="checkbox" id="dead-all" aria-label="Select all"></th><th>Call</th><th>Function</th>
        <th>Status</th><th>Error</th><th>Attempts</th><th>Dead since</th></tr></thead>
      <tbody>${dead.map((d) => `
        <tr data-call="${esc(d.callId)}">
          <td><input type="checkbox" class="dead-pick" value="${esc(d.callId)}" aria-label="Select ${esc(d.callId)}"></td>
          <td><a href="#/calls/${encodeURIComponent(d.callId)}"><code>${esc(d.callId)}</code></a></td>
          <td>${esc(d.function)}</td><td>${esc(d.status)}</td><td>${esc(d.error)}</td>
          <td>${esc(d.attempts)}</td><td>${esc(d.deadAt)}</td>
        </tr>`).join("")}</tbody>
    </table>`;
  $("#dead-all").addEventListener("change", (event) => {
    for (const box of view.querySelectorAll(".dead-pick")) box.checked = event.target.checked;
  });
  $("#replay-selected").addEventListener("click", () => replaySelected(view));
  $("#discard-selected").addEventListener("click", () => {
    if (!confirm("Discard the selected dead letters? They can no longer be replayed.")) return;
    return bulk(view, "Discarded", (id) => api(`/system/dead/${encodeURIComponent(id)}`, { method: "DELETE" }));
  });
}

/**
 * Replays the selected dead letters in one request, so that children of one fan-out group replayed together
 * make one round of it, then says how it went.
 */
async function replaySelected(view) {
  const picked = [...view.querySelectorAll(".dead-pick:checked")].map((box) => box.value);
  if (!picked.length) return;
  const response = await api("/system/dead/replay", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ callIds: picked }),
  });
  if (!response.ok) {
    $("#replay-result").textContent = `Not replayed: ${await errorOf(response)}`;
    return;
  }
  const report = await response.json();
  const failed = report.notReplayed.map((n) => `${n.callId}: ${n.error}`);
  $("#replay-result").textContent = `Replayed ${report.replayed.length} of ${picked.length}.` + (failed.length ? ` Failed: ${failed.join("; ")}` : "");
}

/** Sends one request per selected dead letter, four at a time (each answers for itself), then says how it went. */
async function bulk(view, done, request) {
  const picked = [...view.querySelectorAll(".dead-pick:checked")].map((box) => box.value);
  let succeeded = 0;
  const failed = [];
  for (let i = 0; i < picked.length; i += 4) {
    await Promise.all(picked.slice(i, i + 4).map(async (id) => {
      const response = await request(id);
      if (response.ok) succeeded += 1;
      else failed.push(`${id}: ${await errorOf(response)}`);
    }));
  }
  $("#replay-result").textContent = `${done} ${succeeded} of ${picked.length}.` + (failed.length ? ` Failed: ${failed.join("; ")}` : "");
}

async function eventsPage(view) {
  const query = new URLSearchParams(location.hash.split("?")[1] || "");
  const params = new URLSearchParams();
  for (const key of ["source", "routing"]) if (query.get(key)) params.set(key, query.get(key));
  params.set("limit", "200");
  const drawn = generation;
  const events = await json(`/system/events?${params}`);
  if (stale(drawn)) return;
  const perSource = new Map();
  for (const e of events) perSource.set(e.source, (perSource.get(e.source) || 0) + 1);
  view.innerHTML = `
    <h2>Events</h2>
    <form class="filters" id="events-filter">
      <div><label for="filter-source">Source</label><input id="filter-source" value="${esc(query.get("source") || "")}"></div>
      <div><label for="filter-routing">Routing</label>
        <select id="filter-routing">${["", "matched", "unmatched", "waiting"].map((r) =>
          `<option value="${r}" ${r === (query.get("routing") || "") ? "selected" : ""}>${r || "any"}</option>`).join("")}</select></div>
      <button type="submit">Filter</button>
    </form>
    <form class="filters" id="events-replay">
      <div><label for="replay-since">Route again the events of the last</label>
        <input id="replay-since" value="1h" required aria-describedby="replay-help"></div>
      <button type="submit">Replay</button>
      <span id="replay-help">Events that matched nothing reach functions deployed since; calls already made are not made again.</span>
    </form>
    <p id="events-result" role="status"></p>
    <h3>By source</h3>
    <ul id="events-sources">${[...perSource].map(([source, n]) =>
      `<li><a href="#/events?source=${encodeURIComponent(source)}">${esc(source)}</a>: ${esc(n)}</li>`).join("")}</ul>
    <table id="events-table">
      <thead><tr><th>Sequence</th><th>Received</th><th>Source</th><th>Type</th><th>Subject</th><th>Routing</th><th>Data</th><th></th></tr></thead>
      <tbody>${events.map((e) => `
        <tr data-sequence="${esc(e.sequence)}">
          <td>${esc(e.sequence)}</td><td>${esc(e.receivedAt)}</td><td>${esc(e.source)}</td><td>${esc(e.type)}</td>
          <td>${esc(e.subject || "")}</td>
          <td class="routing-${esc(e.routing)}">${esc(e.routing)}${e.note ? `<br><small>${esc(e.note)}</small>` : ""}</td>
          <td><details><summary>${esc(e.size)} bytes</summary><pre>${esc(e.preview)}</pre></details></td>
          <td><button type="button" class="event-replay" data-sequence="${esc(e.sequence)}"
            aria-label="Route event ${esc(e.sequence)} again">Replay</button></td>
        </tr>`).join("")}</tbody>
    </table>
    ${events.length ? "" : "<p>No events.</p>"}`;
  $("#events-filter").addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    if ($("#filter-source").value) next.set("source", $("#filter-source").value);
    if ($("#filter-routing").value) next.set("routing", $("#filter-routing").value);
    location.hash = `#/events?${next}`;
  });
  $("#events-replay").addEventListener("submit", (event) => {
    event.preventDefault();
    replayEvents({ since: $("#replay-since").value });
  });
  for (const button of view.querySelectorAll(".event-replay")) {
    button.addEventListener("click", () => replayEvents({ sequence: Number(button.dataset.sequence) }));
  }
}

/** Asks for events to be routed again, says what came of it, then shows the list as it now stands. */
async function replayEvents(body) {
  const response = await api("/system/events/replay", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    $("#events-result").textContent = `Not replayed: ${await errorOf(response)}`;
    return;
  }
  const answer = await response.json();
  const said = `Replayed: ${answer.events} events read, ${answer.calls} calls made or already made.`;
  await route();
  $("#events-result").textContent = said;
}

async function healthPage(view) {
  const drawn = generation;
  const [health, info, system] = await Promise.all([
    api("/healthz").then((r) => r.text()),
    json("/system/info"),
    json("/system/health"),
  ]);
  if (stale(drawn)) return;
  const mib = (bytes) => (bytes / 1048576).toFixed(1);
  const age = (seconds) =>
    seconds % 86400 === 0 ? `${seconds / 86400}d` : seconds % 3600 === 0 ? `${seconds / 3600}h` : `${seconds}s`;
  const limit = (s) => {
    const bounds = [s.maxBytes === undefined ? "" : `${mib(s.maxBytes)} MiB`,
      s.maxAgeSeconds === undefined ? "" : `kept ${age(s.maxAgeSeconds)}`].filter(Boolean);
    if (!bounds.length) return "none";
    return `${bounds.join(", ")}${s.maxBytes === undefined ? "" : `; when full: ${s.whenFull}`}`;
  };
  view.innerHTML = `
    <h2>Health</h2>
    <p>Gateway: <strong id="health-gateway">${esc(health)}</strong> · ${esc(info.provider?.provider || "sluice")}
      ${esc(info.version?.release || "")}</p>
    <h3>Workers up</h3>
    <table id="workers-table">
      <thead><tr><th>Worker</th><th>Running / at most</th><th>Functions</th><th>Containers</th><th>Version</th>
        <th>Up since</th><th>Last seen</th></tr></thead>
      <tbody>${system.workers.map((w) => `<tr><td>${esc(w.workerId)} <code>${esc(w.instance)}</code></td>
        <td>${esc(w.inflight)} / ${esc(w.maxInflight)}</td><td>${esc(w.functions)}</td><td>${w.containers ? "yes" : "no"}</td>
        <td>${esc(w.version)}</td><td>${esc(w.startedAt)}</td><td>${esc(w.seenAt)}</td></tr>`).join("")}</tbody>
    </table>
    ${system.workers.length ? "" : `<p class="error" role="alert">No worker is up: calls are queued but nothing runs them.</p>`}
    <h3>Streams and buckets</h3>
    <table id="streams-table">
      <thead><tr><th>Name</th><th>Messages</th><th>MiB</th><th>Consumers</th><th>Limits</th></tr></thead>
      <tbody>${system.streams.map((s) => `<tr data-stream="${esc(s.name)}"><td>${esc(s.name)}</td><td>${esc(s.messages)}</td>
        <td>${esc(mib(s.bytes))}</td><td>${esc(s.consumers)}</td><td class="limits">${esc(limit(s))}</td></tr>`).join("")}</tbody>
    </table>`;
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", login);
  $("#logout").addEventListener("click", () => logout());
  window.addEventListener("hashchange", route);
  if (authorization()) start();
  else logout();
});
