// pgha dashboard: polls this agent's API every 2 s; no library, nothing fetched from elsewhere.
"use strict";
const $ = (id) => document.getElementById(id);
let view = null;

function text(el, s) { el.textContent = s; return el; }
function cell(row, s, cls) { const td = row.insertCell(); text(td, s); if (cls) td.className = cls; return td; }
function bytes(n) {
  if (n === undefined || n === null || n < 0) return "";
  const u = ["B", "kB", "MB", "GB", "TB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : n) + " " + u[i];
}
async function get(path) {
  const r = await fetch(path, {cache: "no-store"});
  if (!r.ok) throw new Error(path + ": " + r.status);
  return r.json();
}

function renderMembers(v) {
  const body = $("members").tBodies[0];
  body.replaceChildren();
  for (const m of v.members) {
    const row = body.insertRow();
    row.dataset.member = m.name;
    cell(row, m.name);
    const leader = v.leader === m.name;
    const role = leader ? "leader" : m.role;
    const td = row.insertCell();
    if (leader) { const sp = text(document.createElement("span"), "leader"); sp.className = "role-leader"; td.appendChild(sp); }
    else text(td, role);
    cell(row, m.state, "state-" + m.state);
    cell(row, String(m.timeline || ""));
    cell(row, m.role === "replica" ? bytes(m.lag_bytes) : "");
    cell(row, m.host + ":" + m.port);
    cell(row, m.archive || "");
    const tags = [];
    if (m.tags) {
      if (m.tags.region) tags.push("region " + m.tags.region + (m.tags.zone ? "/" + m.tags.zone : ""));
      if (m.tags.nofailover) tags.push("nofailover"); if (m.tags.nosync) tags.push("nosync"); if (m.tags.noloadbalance) tags.push("noloadbalance");
    }
    cell(row, tags.join(" "));
  }
  const notes = [];
  if (v.backup && v.backup.running && v.backup.running.member) notes.push("Backup running on " + v.backup.running.member + " (" + v.backup.running.percent + "%)");
  if (v.backup && v.backup.last && v.backup.last.label) notes.push("Last backup " + v.backup.last.label + (v.backup.last.ok ? " ok" : " FAILED"));
  if (v.restore && v.restore.phase) notes.push("In-place restore to " + v.restore.target + ": " + v.restore.phase);
  if (v.switchover && v.switchover.phase) notes.push("Switchover " + v.switchover.from + " → " + v.switchover.to + ": " + v.switchover.phase);
  text($("notes"), notes.join(" · "));
  const sel = $("so-to"), keep = sel.value;
  sel.replaceChildren();
  for (const m of v.members) if (m.name !== v.leader) { const o = document.createElement("option"); o.value = m.name; o.textContent = m.name; sel.appendChild(o); }
  if (keep) sel.value = keep;
}

function renderProxies(v, s) {
  const body = $("proxies").tBodies[0];
  body.replaceChildren();
  for (const p of v.proxies || []) {
    const row = body.insertRow();
    if (p.invalid) { cell(row, "(a record nobody can read: " + p.invalid + ")"); continue; }
    cell(row, p.region ? p.name + " (" + p.region + (p.zone ? "/" + p.zone : "") + ")" : p.name); cell(row, p.listen); cell(row, p.listen_ro || "-"); cell(row, String(p.clients));
    cell(row, String(p.waiting)); cell(row, String(p.pools));
    cell(row, p.paused_for || "-");
  }
  if (!(v.proxies || []).length) cell(body.insertRow(), "no proxy registered");
  const eps = (s.etcd.health || []).map((h) => h.url + (h.up ? " up" : " DOWN")).join(", ");
  text($("etcd"), (eps || s.etcd.endpoints || "?") + (s.etcd.reachable ? "; this agent reaches etcd" : "; this agent cannot reach etcd"));
}

function renderHistory(h) {
  const body = $("history").tBodies[0];
  body.replaceChildren();
  for (const e of h.entries.slice().reverse()) {
    const row = body.insertRow();
    cell(row, new Date(e.at).toISOString().replace("T", " ").replace("Z", ""));
    cell(row, e.kind); cell(row, e.from || "-"); cell(row, e.to); cell(row, String(e.timeline));
    cell(row, (e.unavailable_ms / 1000).toFixed(1) + " s");
  }
}

function chart(id, series) {
  const c = $(id), g = c.getContext("2d");
  g.clearRect(0, 0, c.width, c.height);
  let max = 1;
  for (const s of series) for (const p of s.points) if (p[1] > max) max = p[1];
  const t0 = Date.now() - 600000, x = (t) => (t - t0) / 600000 * (c.width - 50) + 45, y = (v) => c.height - 15 - v / max * (c.height - 25);
  g.fillStyle = "#667085"; g.font = "10px system-ui";
  g.fillText(max >= 1024 && id === "lag" ? bytes(max) : String(Math.round(max * 10) / 10), 2, 12);
  g.fillText("0", 2, c.height - 15); g.fillText("-10 min", 45, c.height - 2); g.fillText("now", c.width - 25, c.height - 2);
  const colors = ["#0969da", "#bf3989", "#1a7f37", "#9a6700", "#8250df"];
  series.forEach((s, i) => {
    g.strokeStyle = colors[i % colors.length]; g.lineWidth = 1.5; g.beginPath();
    s.points.forEach((p, k) => k ? g.lineTo(x(p[0]), y(p[1])) : g.moveTo(x(p[0]), y(p[1])));
    g.stroke();
    if (s.name) { g.fillStyle = g.strokeStyle; g.fillText(s.name, c.width - 90, 12 + 11 * i); }
  });
}

function renderSeries(s) {
  const tps = [], conns = [], lag = {}, waiting = [];
  for (let i = 0; i < s.points.length; i++) {
    const p = s.points[i];
    if (i > 0 && p.xacts !== null && s.points[i - 1].xacts !== null) {
      const dt = (p.t - s.points[i - 1].t) / 1000;
      if (dt > 0) tps.push([p.t, Math.max(0, (p.xacts - s.points[i - 1].xacts) / dt)]);
    }
    if (p.conns !== null) conns.push([p.t, p.conns]);
    if (p.proxy_waiting !== null) waiting.push([p.t, p.proxy_waiting]);
    for (const [name, v] of Object.entries(p.lag)) (lag[name] = lag[name] || []).push([p.t, v]);
  }
  for (const el of document.querySelectorAll(".self")) text(el, s.member || "this member");
  chart("tps", [{points: tps}]);
  chart("conns", [{points: conns}]);
  chart("lag", Object.entries(lag).map(([name, points]) => ({name, points})));
  chart("waiting", [{points: waiting}]);
}

async function refresh() {
  try {
    const [v, h, s] = await Promise.all([get("/cluster"), get("/history"), get("/ui/series")]);
    view = v;
    text($("cluster"), v.cluster || "");
    const leader = v.members.find((m) => m.name === v.leader);
    const healthy = leader && leader.role === "primary" && leader.state === "running";
    const st = text($("status"), healthy ? "leader " + v.leader : "no running leader");
    st.className = "badge " + (healthy ? "ok" : "bad");
    renderMembers(v); renderProxies(v, s); renderHistory(h); renderSeries(s);
    text($("paused"), v.paused ? "on (no automatic failover)" : "off");
    text($("updated"), "updated " + new Date().toLocaleTimeString());
  } catch (e) {
    const st = text($("status"), "cannot read the API: " + e.message); st.className = "badge bad";
  }
}

function say(msg, bad) { const out = $("so-result"); text(out, msg); out.className = bad ? "error" : ""; }

// Every change goes through the agent's API with the token typed here (kept in this page only).
async function act(method, path, body, what) {
  const token = $("so-token").value;
  if (!token) { say("The API token is needed (the file [node] api_token_file names).", true); return; }
  say("asking…");
  try {
    const r = await fetch(path, {method, headers: {"Authorization": "Bearer " + token, "Content-Type": "application/json"},
                                 body: body ? JSON.stringify(body) : undefined});
    const b = await r.json().catch(() => ({}));
    if (r.ok) say(what(b)); else say("Refused (" + r.status + "): " + (b.error || ""), true);
  } catch (e) { say("Failed: " + e.message, true); }
  refresh();
}

$("ops").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const to = $("so-to").value;
  if (!view || !to) return;
  if (!$("so-token").value) { say("The API token is needed (the file [node] api_token_file names).", true); return; }
  if (!confirm("Switch over cluster " + view.cluster + " from " + view.leader + " to " + to + "?\n\n" +
               "The proxies hold new transactions, " + view.leader + " stops cleanly and " + to + " becomes the leader.")) return;
  act("POST", "/switchover", {candidate: to, leader: view.leader}, (b) => "Switchover " + b.id + " asked: " + b.from + " → " + b.to + ".");
});
$("pause").addEventListener("click", () => {
  if (!view) return;
  if (!$("so-token").value) { say("The API token is needed (the file [node] api_token_file names).", true); return; }
  if (!confirm("Turn on maintenance mode in cluster " + view.cluster + "?\n\nNo automatic failover until it is resumed: " +
               "if the leader fails meanwhile, nobody takes over.")) return;
  act("POST", "/pause", null, () => "Maintenance mode on.");
});
$("resume").addEventListener("click", () => {
  if (!view) return;
  if (!$("so-token").value) { say("The API token is needed (the file [node] api_token_file names).", true); return; }
  if (!confirm("End maintenance mode in cluster " + view.cluster + "?\n\nAutomatic failover works again.")) return;
  act("DELETE", "/pause", null, () => "Maintenance mode off.");
});

refresh();
setInterval(refresh, 2000);
