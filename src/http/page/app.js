// The tree view: fetches /api/processes, flattens the trees once per
// listing (O(n)), and renders only the rows in view, so thousands of
// processes stay fast. No build step: this file is served as it is.
"use strict";

const ROW = 24;
const REFRESH_MS = 500;
const $ = (id) => document.getElementById(id);

let flat = [];            // every process in depth-first order
let rows = [];            // the ones shown now
const collapsed = new Set();
let pending = null;       // the process a kill waits confirmation for
let marks = new Map();    // job members by "pid:start_time": which job, found how

// Sign-in: the link `proctrack serve` prints carries a one-time code in
// its fragment (never sent to a server, never in a log); the page trades
// it for an HttpOnly session cookie that scripts cannot read. Without a
// code, or once the session ends, the form asks for the API token, traded
// the same way. Neither stays in the page.
async function signIn(body, token) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  const response = await fetch("api/session", { method: "POST", headers, body: JSON.stringify(body) });
  if (response.ok) return true;
  const answer = await response.json().catch(() => ({ message: response.statusText }));
  $("message").textContent = "sign-in failed: " + answer.message;
  return false;
}

function askToSignIn() {
  $("signin").hidden = false;
}

$("signin").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token").value;
  $("token").value = "";
  if (await signIn({}, token)) {
    $("signin").hidden = true;
    $("message").textContent = "";
    start();
  }
});

function flatten(trees) {
  const out = [];
  const stack = [];
  for (let i = trees.length - 1; i >= 0; i--) stack.push([trees[i], 0]);
  while (stack.length) {
    const [node, depth] = stack.pop();
    if (node === null) { out[depth].end = out.length; continue; }
    const p = node.process;
    const index = out.length;
    out.push({ p, depth, kids: node.children.length, start: index, end: 0,
               text: (p.identity.pid + " " + p.name + " " + p.cmdline.join(" ") + " " +
                      (p.cwd.path || "")).toLowerCase() });
    stack.push([null, index]);
    for (let i = node.children.length - 1; i >= 0; i--) stack.push([node.children[i], depth + 1]);
  }
  return out;
}

// Matches, their ancestors (for context) and their subtrees; collapsed
// subtrees hidden. One pass forward, one backward.
function select() {
  const query = $("filter").value.trim().toLowerCase();
  const show = new Uint8Array(flat.length);
  if (query) {
    let until = -1;
    for (let i = 0; i < flat.length; i++) {
      if (i < until) { show[i] = flat[i].text.includes(query) ? 2 : 1; continue; }
      if (flat[i].text.includes(query)) { show[i] = 2; until = flat[i].end; }
    }
    // An ancestor is shown when some row in its range is.
    for (let i = flat.length - 1; i >= 0; i--) {
      if (show[i]) continue;
      for (let j = i + 1; j < flat[i].end; j = flat[j].end) {
        if (show[j]) { show[i] = 1; break; }
      }
    }
  } else {
    show.fill(1);
  }
  rows = [];
  for (let i = 0; i < flat.length; i++) {
    if (!show[i]) continue;
    rows.push({ row: flat[i], match: show[i] === 2 });
    if (collapsed.has(flat[i].p.identity.pid)) {
      const end = flat[i].end;
      while (i + 1 < end) i++;
    }
  }
  $("spacer").style.height = rows.length * ROW + "px";
  $("status").textContent = `${flat.length} processes, ${rows.length} shown`;
  render();
}

function bytes(n) {
  if (n >= 1 << 30) return (n / (1 << 30)).toFixed(1) + " G";
  if (n >= 1 << 20) return (n / (1 << 20)).toFixed(1) + " M";
  return Math.round(n / 1024) + " K";
}

// A row's elements, made once and reused: a refresh updates them in place,
// so a button under the pointer is never replaced between press and release.
function makeRow() {
  const div = document.createElement("div");
  const span = (cls) => { const e = document.createElement("span"); e.className = cls; div.appendChild(e); return e; };
  const parts = { pid: span("pid"), name: span("name"), cwd: span("cwd"), cpu: span("num"), rss: span("num") };
  parts.toggle = document.createElement("span");
  parts.toggle.className = "toggle";
  parts.label = document.createTextNode("");
  parts.job = document.createElement("span");
  parts.job.className = "job";
  parts.name.append(parts.toggle, parts.label, parts.job);
  const act = span("act");
  parts.kill = document.createElement("button");
  parts.kill.className = "kill";
  parts.kill.textContent = "kill";
  act.appendChild(parts.kill);
  div.parts = parts;
  return div;
}

function render() {
  const view = $("viewport");
  const first = Math.max(0, Math.floor(view.scrollTop / ROW) - 10);
  const last = Math.min(rows.length, first + Math.ceil(view.clientHeight / ROW) + 20);
  const box = $("rows");
  box.style.top = first * ROW + "px";
  while (box.children.length < last - first) box.appendChild(makeRow());
  while (box.children.length > Math.max(0, last - first)) box.lastChild.remove();
  for (let i = first; i < last; i++) {
    const { row, match } = rows[i];
    const p = row.p;
    const pid = p.identity.pid;
    const div = box.children[i - first];
    const parts = div.parts;
    div.className = match ? "row match" : "row";
    div.dataset.pid = pid;
    parts.pid.textContent = pid;
    // Indentation is content (text-indent), not padding: a deep row is cut
    // at its column's edge instead of pushing into the next column.
    parts.name.style.textIndent = row.depth * 14 + "px";
    parts.name.title = p.cmdline.join(" ");
    parts.toggle.textContent = row.kids ? (collapsed.has(pid) ? "▸" : "▾") : "";
    parts.toggle.onclick = () => { collapsed.has(pid) ? collapsed.delete(pid) : collapsed.add(pid); select(); };
    parts.label.data = p.cmdline.length ? p.cmdline.join(" ") : "[" + p.name + "]";
    const mark = marks.get(pid + ":" + p.identity.start_time);
    parts.job.textContent = mark ? `job ${mark.job}: ${mark.found_by.join(",")}` : "";
    parts.job.hidden = !mark;
    parts.cwd.textContent = p.cwd.path || "";
    parts.cpu.textContent = p.cpu_percent == null ? "–" : p.cpu_percent.toFixed(1);
    parts.rss.textContent = bytes(p.rss_bytes);
    parts.kill.onclick = () => ask(row);
  }
}

function ask(row) {
  const size = row.end - row.start;
  pending = row.p;
  $("confirm-text").textContent =
    `Kill process ${row.p.identity.pid} (${row.p.name}) and its tree of ${size} process(es)?` +
    " SIGTERM, then SIGKILL after 2 s.";
  $("confirm").hidden = false;
}

async function kill() {
  const p = pending;
  $("confirm").hidden = true;
  const response = await fetch(`api/processes/${p.identity.pid}/kill`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ start_time: p.identity.start_time, signal: "SIGTERM", grace_ms: 2000 }),
  });
  const body = await response.json();
  if (response.status === 401) askToSignIn();
  $("message").textContent = response.ok
    ? `killed ${body.killed.length}, already gone ${body.already_gone.length}, survived ${body.survived.length}`
    : `kill failed: ${body.message}`;
  refresh();
}

let inFlight = false;
// Marks cost the server a look at every process's environment: asked
// for at most every 2 s, not on every listing.
const MARKS_MS = 2000;
let marksAt = -Infinity;

async function refreshMarks() {
  if (performance.now() - marksAt < MARKS_MS) return;
  marksAt = performance.now();
  try {
    const response = await fetch("api/marks");
    if (!response.ok) return;
    const body = await response.json();
    marks = new Map(body.marks.map((m) => [m.pid + ":" + m.start_time, m]));
    render();
  } catch (error) {
    // Marks are a decoration: the listing stands without them.
  }
}

async function refresh() {
  if (inFlight) return;
  inFlight = true;
  try {
    const started = performance.now();
    const response = await fetch("api/processes");
    const body = await response.json();
    if (response.status === 401) askToSignIn();
    if (!response.ok) throw new Error(body.message);
    const fetched = performance.now();
    flat = flatten(body.trees);
    select();
    await refreshMarks();
    // For tests and the curious: where a refresh's time goes.
    document.body.dataset.fetchMs = (fetched - started).toFixed(1);
    document.body.dataset.renderMs = (performance.now() - fetched).toFixed(1);
  } catch (error) {
    $("status").textContent = "cannot list: " + error.message;
  } finally {
    inFlight = false;
  }
}

$("filter").addEventListener("input", select);
$("viewport").addEventListener("scroll", render);
window.addEventListener("resize", render);
$("confirm-kill").onclick = kill;
$("confirm-cancel").onclick = () => { $("confirm").hidden = true; };

// Live: every event from /api/events asks for a listing (at most one per
// 250 ms); a slow poll keeps CPU% current. Without the stream (an old
// server, a proxy that buffers), poll every half second.
let soonTimer = null;
function soon() {
  if (!soonTimer) soonTimer = setTimeout(() => { soonTimer = null; refresh(); }, 250);
}
let poll = null;
function polling(ms, mode) {
  clearInterval(poll);
  poll = setInterval(refresh, ms);
  $("mode").textContent = mode;
}
let events = null;
function start() {
  polling(REFRESH_MS, "polling");
  if (window.EventSource && !events) {
    const source = new EventSource("api/events");
    events = source;
    const stop = () => { source.close(); if (events === source) events = null; };
    source.addEventListener("ready", () => { polling(2000, "live"); soon(); });
    source.addEventListener("process", soon);
    source.addEventListener("lagged", soon);
    source.addEventListener("failed", () => { stop(); polling(REFRESH_MS, "polling"); });
    source.onerror = () => {
      // A refused stream (401: the session ended) is not retried by the
      // browser: it starts again after the next sign-in.
      if (source.readyState === EventSource.CLOSED) stop();
      polling(REFRESH_MS, "polling");
    };
  }
  refresh();
}

(async () => {
  const code = new URLSearchParams(location.hash.slice(1)).get("code");
  if (code) {
    // Out of the address bar and history at once: the code works once.
    history.replaceState(null, "", location.pathname + location.search);
    await signIn({ code });
  }
  start();
})();
