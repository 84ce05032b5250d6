// cclm dashboard: renders each snapshot the server pushes (Server-Sent
// Events). No framework and no network but this server.
"use strict";

const colors = { transferred: "#1b5fb3", remaining: "#e08a00", dirtyRate: "#b3261e", throughput: "#1f7a3a" };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c == null ? "" : String(c)));
  return node;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + " " + units[i];
}

function duration(ms) {
  if (ms == null) return "-";
  if (ms < 1000) return ms + " ms";
  const s = ms / 1000;
  return s < 60 ? s.toFixed(1) + " s" : Math.floor(s / 60) + "m" + String(Math.round(s % 60)).padStart(2, "0") + "s";
}

function stateClass(state) {
  if (/Stopped|Halted|Pending/.test(state)) return "";
  if (/Succeeded|Ready|Running|True/.test(state)) return state === "Running" ? "run" : "ok";
  if (/Failed|Canceled|Blocked|NotReady/.test(state)) return "bad";
  return "run";
}

function table(headers, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", {}, h)))), el("tbody", {}, ...rows));
}

function renderCluster(c) {
  const nodes = c.nodes.map((n) => el("tr", { "data-node": n.name },
    el("td", {}, n.name),
    el("td", { class: n.ready ? "ok" : "bad" }, n.ready ? "Ready" : "NotReady"),
    el("td", {}, ...n.vmis.map((v) => el("span", { class: "badge", "data-vmi": v }, v)))));
  const vms = c.vms.map((v) => el("tr", { "data-vm": v.namespace + "/" + v.name, "data-running": String(v.running) },
    el("td", {}, v.namespace + "/" + v.name),
    el("td", { class: stateClass(v.status) }, v.status),
    el("td", {}, v.node || "-")));
  return el("div", { class: "cluster", "data-cluster": c.name },
    el("h2", {}, c.name, " ", el("span", { class: "role" }, c.role)),
    ...(c.problems || []).map((p) => el("div", { class: "problem" }, p)),
    el("h3", {}, "Nodes"),
    table(["NODE", "STATE", "RUNNING VMS"], nodes),
    el("h3", { style: "margin-top:10px" }, "VMs"),
    vms.length ? table(["VM", "STATUS", "NODE"], vms) : el("p", { class: "empty" }, "no VMs"));
}

// chart draws series (each scaled to its own maximum, named in the
// legend with its latest value) over the points' time span.
function chart(points, series, format) {
  const canvas = el("canvas", { width: 560, height: 140, "data-points": String(points.length) });
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  if (points.length > 0) {
    const t0 = points[0].t, span = Math.max(1, points[points.length - 1].t - t0);
    for (const name of series) {
      const top = Math.max(1, ...points.map((p) => p[name]));
      ctx.strokeStyle = colors[name];
      ctx.lineWidth = 2;
      ctx.beginPath();
      points.forEach((p, i) => {
        const x = 4 + ((p.t - t0) / span) * (canvas.width - 8);
        const y = canvas.height - 6 - (p[name] / top) * (canvas.height - 12);
        if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
      });
      ctx.stroke();
      if (points.length === 1) ctx.fillRect(2, canvas.height - 8, 4, 4);
    }
  }
  const last = points[points.length - 1] || {};
  const legend = el("div", { class: "legend" }, ...series.flatMap((name) =>
    [el("i", { style: "background:" + colors[name] }), name + " " + format(last[name] || 0)]));
  return el("div", {}, canvas, legend);
}

function renderMigration(m) {
  const info = el("dl", {},
    el("dt", {}, "VMI"), el("dd", {}, m.namespace + "/" + m.vmi),
    el("dt", {}, "clusters"), el("dd", {}, m.peerCluster ? m.cluster + " → " + m.peerCluster : m.cluster),
    el("dt", {}, "nodes"), el("dd", {}, (m.sourceNode || "?") + " → " + (m.targetNode || "?")),
    el("dt", {}, "state"), el("dd", { class: stateClass(m.state), "data-state": m.state }, m.state),
    el("dt", {}, "passes"), el("dd", { "data-passes": String(m.iteration) }, m.iteration),
    el("dt", {}, "total time"), el("dd", { "data-duration": String(m.durationMs || "") }, m.state === "Running" ? "running" : duration(m.durationMs)),
    el("dt", {}, "downtime"), el("dd", { "data-downtime": m.downtimeMs == null ? "" : String(m.downtimeMs) }, duration(m.downtimeMs)));
  return el("div", { class: "migration", "data-migration": m.key, "data-vmi-migrating": m.namespace + "/" + m.vmi, "data-from": m.cluster },
    info,
    chart(m.points, ["transferred", "remaining"], bytes),
    chart(m.points, ["dirtyRate", "throughput"], (v) => bytes(v) + "/s"));
}

function renderPlan(p) {
  const rows = p.vms.map((v) => el("tr", { "data-plan-vm": v.namespace + "/" + v.name },
    el("td", {}, v.namespace + "/" + v.name),
    el("td", { class: stateClass(v.result || v.step) }, v.result || v.step),
    el("td", {}, bytes(v.transferred)),
    el("td", {}, duration(v.durationMs || null)),
    el("td", { "data-downtime": v.downtimeMs == null ? "" : String(v.downtimeMs) }, duration(v.downtimeMs))));
  return el("div", { class: "plan", "data-plan": p.namespace + "/" + p.name },
    el("h3", {}, p.cluster + ": " + p.namespace + "/" + p.name + " ", el("span", { class: "badge " + stateClass(p.state) }, p.state)),
    table(["VM", "STEP", "TRANSFERRED", "TIME", "DOWNTIME"], rows));
}

function render(snapshot) {
  document.getElementById("clusters").replaceChildren(...snapshot.clusters.map(renderCluster));
  const migrations = snapshot.migrations || [];
  document.getElementById("migrations").replaceChildren(...(migrations.length ? migrations.map(renderMigration) : [el("p", { class: "empty" }, "none yet")]));
  const plans = snapshot.plans || [];
  document.getElementById("plans").replaceChildren(...(plans.length ? plans.map(renderPlan) : [el("p", { class: "empty" }, "none")]));
  document.getElementById("updated").textContent = "updated " + new Date(snapshot.at).toLocaleTimeString();
}

function connect() {
  const badge = document.getElementById("connection");
  const source = new EventSource("events");
  source.onopen = () => { badge.textContent = "live"; badge.className = "badge ok"; };
  source.onerror = () => { badge.textContent = "reconnecting"; badge.className = "badge bad"; };
  source.onmessage = (event) => render(JSON.parse(event.data));
}

connect();
