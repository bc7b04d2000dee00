// The wasp dashboard. Reads the API with the token the user gives (kept in this tab's
// sessionStorage only, never in lasting storage nor the URL) and follows
// GET /v1/events/stream, read with fetch() so the token goes in a header (the browser's own
// SSE client cannot send one); the SSE framing is parsed here. No framework, no build step.
"use strict";

const TOKEN_KEY = "wasp.token";
const HOUR_MS = 3600 * 1000;
const REFRESH_MS = 5000;
const SLOW_REFRESH_MS = 10000;
const MESSAGES_SHOWN = 50;
const FAILURES_SHOWN = 20;
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 30000;
const STEPS = ["accepted", "sent", "delivered", "read", "failed", "fell_back"];
const PRIORITIES = ["critical", "high", "normal", "bulk"];

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  stream: null,
  reconnectMs: RECONNECT_MIN_MS,
  reconnectTimer: null,
  timers: [],
  // Chart points, oldest first: {at_ms, accepted, sent, read, backlog} (rates per second).
  points: [],
  lastTick: null,
  // Per-minute sent counts of every node, from GET /v1/stats?by=minute (null: not served).
  clusterMinutes: null,
  statsRefresh: null,
};

// ---------------------------------------------------------------- the API

class Unauthorized extends Error {}

class NotServed extends Error {}

async function api(path) {
  const response = await fetch(path, {
    headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" },
    cache: "no-store",
  });
  if (response.status === 401) {
    throw new Unauthorized("the token was refused");
  }
  if (response.status === 404) {
    throw new NotServed(path);
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const message = body && body.error ? body.error.message : `${response.status}`;
    throw new Error(message);
  }
  return body;
}

// ---------------------------------------------------------------- the token

function askForToken(message) {
  stop();
  state.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  $("dashboard").hidden = true;
  $("forget").hidden = true;
  $("token-form").hidden = false;
  $("token-error").textContent = message || "";
  setConnection("idle", "not connected");
  $("token").focus();
}

function useToken(token) {
  state.token = token;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token-form").hidden = true;
  $("dashboard").hidden = false;
  $("forget").hidden = false;
  start();
}

function onUnauthorized(error) {
  if (error instanceof Unauthorized) {
    askForToken("The server refused that token. Give the admin token, or one with scope messages:read.");
    return true;
  }
  return false;
}

// ---------------------------------------------------------------- the stream

function setConnection(stateName, text) {
  const indicator = $("connection");
  indicator.dataset.state = stateName;
  indicator.textContent = text;
}

function connect() {
  const controller = new AbortController();
  state.stream = controller;
  setConnection("connecting", "connecting…");
  follow(controller).then(
    () => reconnectLater(controller, "the stream ended"),
    (error) => {
      if (controller.signal.aborted) {
        return;
      }
      if (!onUnauthorized(error)) {
        reconnectLater(controller, error.message);
      }
    },
  );
}

function reconnectLater(controller, why) {
  if (state.stream !== controller || controller.signal.aborted) {
    return;
  }
  const delay = state.reconnectMs;
  state.reconnectMs = Math.min(state.reconnectMs * 2, RECONNECT_MAX_MS);
  setConnection("disconnected", `disconnected (${why}); retrying in ${Math.round(delay / 1000)} s`);
  state.reconnectTimer = setTimeout(connect, delay);
}

async function follow(controller) {
  const response = await fetch("/v1/events/stream", {
    headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" },
    cache: "no-store",
    signal: controller.signal,
  });
  if (response.status === 401) {
    throw new Unauthorized("the token was refused");
  }
  if (!response.ok || !response.body) {
    const body = await response.json().catch(() => null);
    throw new Error(body && body.error ? body.error.message : `the server answered ${response.status}`);
  }
  setConnection("connected", "live");
  state.reconnectMs = RECONNECT_MIN_MS;
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      return;
    }
    buffer += decoder.decode(value, { stream: true }).replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = parseEvent(block);
      if (event) {
        dispatch(event.kind, event.data);
      }
    }
  }
}

// One SSE block: `event:` names it, `data:` lines are joined by newlines, `:` lines are comments.
function parseEvent(block) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) {
      continue;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) {
      value = value.slice(1);
    }
    if (field === "event") {
      kind = value;
    } else if (field === "data") {
      data.push(value);
    }
  }
  if (data.length === 0) {
    return null;
  }
  try {
    return { kind, data: JSON.parse(data.join("\n")) };
  } catch (error) {
    console.warn("an event that is not JSON", kind, error);
    return null;
  }
}

function dispatch(kind, data) {
  switch (kind) {
    case "history":
      onHistory(data);
      break;
    case "tick":
      onTick(data);
      break;
    case "message":
      onMessage(data);
      break;
    case "region":
      onRegion(data);
      break;
    case "rule":
      onRule(data);
      break;
    case "lagged":
      console.warn(`the dashboard fell behind and missed ${data.missed} events`);
      break;
    default:
      break;
  }
}

// ---------------------------------------------------------------- ticks and charts

function onHistory(history) {
  const samples = history.samples || [];
  state.points = [];
  for (let index = 1; index < samples.length; index += 1) {
    const before = samples[index - 1];
    const after = samples[index];
    const seconds = (after.at_ms - before.at_ms) / 1000;
    if (seconds <= 0 || after.started_at_ms !== before.started_at_ms) {
      continue;
    }
    const rate = (step) => Math.max(0, after.since_start[step] - before.since_start[step]) / seconds;
    state.points.push({
      at_ms: after.at_ms,
      accepted: rate("accepted"),
      sent: rate("sent"),
      read: rate("read"),
      backlog: after.backlog,
    });
  }
  if (samples.length > 0) {
    showTick(samples[samples.length - 1]);
  }
  drawCharts();
}

function onTick(tick) {
  state.points.push({
    at_ms: tick.at_ms,
    accepted: tick.last_second.accepted,
    sent: tick.last_second.sent,
    read: tick.last_second.read,
    backlog: tick.backlog,
  });
  const oldest = tick.at_ms - HOUR_MS;
  while (state.points.length > 0 && state.points[0].at_ms < oldest) {
    state.points.shift();
  }
  showTick(tick);
  drawCharts();
}

function showTick(tick) {
  state.lastTick = tick;
  for (const step of STEPS) {
    $(`count-${step}`).textContent = tick.since_start[step].toLocaleString();
  }
  $("backlog").textContent = tick.backlog.toLocaleString();
  $("sending").textContent = tick.sending.toLocaleString();
  const counters = $("counters");
  counters.dataset.ticks = String(Number(counters.dataset.ticks) + 1);
  const classes = PRIORITIES.map((name) => `${name} ${(tick.backlog_by_priority[name] || 0).toLocaleString()}`);
  $("backlog-classes").textContent = `Waiting in the whole store by class: ${classes.join(", ")}. Counts since node ${tick.node_id} started ${since(tick.started_at_ms)}.`;
  $("node").textContent = `node ${tick.node_id}`;
}

function since(atMs) {
  return new Date(atMs).toLocaleString();
}

function clock(atMs) {
  return new Date(atMs).toLocaleTimeString();
}

function drawCharts() {
  const now = state.lastTick ? state.lastTick.at_ms : Date.now();
  const cluster = (state.clusterMinutes || []).map((minute) => ({ at_ms: minute.at_ms + 60000, value: minute.sent / 60 }));
  drawChart($("chart-throughput"), now, [
    { values: state.points.map((point) => ({ at_ms: point.at_ms, value: point.accepted })), color: "--accepted" },
    { values: state.points.map((point) => ({ at_ms: point.at_ms, value: point.read })), color: "--read" },
    { values: state.points.map((point) => ({ at_ms: point.at_ms, value: point.sent })), color: "--sent" },
    { values: cluster, color: "--cluster", dashed: true },
  ]);
  drawChart($("chart-backlog"), now, [
    { values: state.points.map((point) => ({ at_ms: point.at_ms, value: point.backlog })), color: "--sent", fill: true },
  ]);
}

function drawChart(canvas, now, series) {
  const context = canvas.getContext("2d");
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = Math.round((width * canvas.height) / canvas.width) || canvas.height;
  const pixelWidth = Math.round(width * ratio);
  const pixelHeight = Math.round(height * ratio);
  if (canvas.width !== pixelWidth || canvas.height !== pixelHeight) {
    canvas.width = pixelWidth;
    canvas.height = pixelHeight;
  }
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  const styles = getComputedStyle(document.documentElement);
  const left = 44;
  const bottom = height - 18;
  const top = 8;
  const right = width - 8;
  let max = 0;
  for (const line of series) {
    for (const point of line.values) {
      max = Math.max(max, point.value);
    }
  }
  max = niceCeiling(max);
  context.font = "11px system-ui, sans-serif";
  context.fillStyle = styles.getPropertyValue("--muted");
  context.strokeStyle = styles.getPropertyValue("--line");
  context.lineWidth = 1;
  for (const fraction of [0, 0.5, 1]) {
    const y = bottom - (bottom - top) * fraction;
    context.beginPath();
    context.moveTo(left, y);
    context.lineTo(right, y);
    context.stroke();
    context.fillText(formatNumber(max * fraction), 4, y + 4);
  }
  for (const minutesAgo of [60, 45, 30, 15, 0]) {
    const x = left + ((right - left) * (60 - minutesAgo)) / 60;
    context.fillText(minutesAgo === 0 ? "now" : `-${minutesAgo}m`, Math.min(x - 10, right - 22), height - 4);
  }
  const xOf = (atMs) => left + ((right - left) * (atMs - (now - HOUR_MS))) / HOUR_MS;
  const yOf = (value) => bottom - ((bottom - top) * value) / max;
  for (const line of series) {
    const points = line.values.filter((point) => point.at_ms >= now - HOUR_MS && point.at_ms <= now + 60000);
    if (points.length === 0) {
      continue;
    }
    const color = styles.getPropertyValue(line.color);
    context.strokeStyle = color;
    context.lineWidth = 1.5;
    context.setLineDash(line.dashed ? [4, 3] : []);
    context.beginPath();
    points.forEach((point, index) => {
      const x = Math.min(xOf(point.at_ms), right);
      const y = yOf(point.value);
      if (index === 0) {
        context.moveTo(x, y);
      } else {
        context.lineTo(x, y);
      }
    });
    context.stroke();
    if (line.fill) {
      context.lineTo(Math.min(xOf(points[points.length - 1].at_ms), right), bottom);
      context.lineTo(xOf(points[0].at_ms), bottom);
      context.closePath();
      context.globalAlpha = 0.15;
      context.fillStyle = color;
      context.fill();
      context.globalAlpha = 1;
    }
  }
  context.setLineDash([]);
}

function niceCeiling(value) {
  if (value <= 1) {
    return 1;
  }
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 5, 10]) {
    if (value <= step * power) {
      return step * power;
    }
  }
  return 10 * power;
}

function formatNumber(value) {
  if (value >= 1000) {
    return `${(value / 1000).toFixed(value >= 10000 ? 0 : 1)}k`;
  }
  if (Number.isInteger(value)) {
    return String(value);
  }
  // Rates and thresholds below 1 keep two significant digits (0.001, 0.25).
  return Math.abs(value) < 1 ? String(Number(value.toPrecision(2))) : value.toFixed(1);
}

// ---------------------------------------------------------------- tables

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined || text === "" ? "–" : String(text);
  if (className) {
    td.className = className;
  }
  row.appendChild(td);
  return td;
}

function emptyRow(tbody, columns, text) {
  tbody.replaceChildren();
  const row = document.createElement("tr");
  const td = cell(row, text, "empty");
  td.colSpan = columns;
  tbody.appendChild(row);
}

function percent(rate) {
  return rate === null || rate === undefined ? "–" : `${(rate * 100).toFixed(1)}%`;
}

function shortId(id) {
  return id.length > 13 ? `…${id.slice(-12)}` : id;
}

function describeError(error, scope) {
  if (error instanceof NotServed) {
    return "not served by this server";
  }
  if (/scope/.test(error.message)) {
    return `the token lacks scope ${scope}`;
  }
  return `could not be read: ${error.message}`;
}

// ---------------------------------------------------------------- funnel (GET /v1/stats)

async function refreshFunnels() {
  await Promise.all([refreshFunnel("category"), refreshFunnel("template"), refreshMinutes()]);
}

async function refreshFunnel(by) {
  const tbody = $(`funnel-${by}`).tBodies[0];
  try {
    const stats = await api(`/v1/stats?by=${by}&window=1h`);
    const groups = stats.groups || [];
    if (groups.length === 0) {
      emptyRow(tbody, 5, by === "template" ? "no template messages in the last hour" : "no messages in the last hour");
      return;
    }
    const most = Math.max(1, ...groups.map((group) => group.sent));
    tbody.replaceChildren();
    const head = document.createElement("tr");
    for (const title of [by, "sent → delivered → read", "delivered", "read", "failed"]) {
      const th = document.createElement("th");
      th.textContent = title;
      head.appendChild(th);
    }
    tbody.appendChild(head);
    for (const group of groups) {
      const row = document.createElement("tr");
      row.dataset.key = group.key;
      cell(row, by === "template" && group.key === "(none)" ? "(not a template)" : group.key);
      const bars = cell(row, "", "bars");
      bars.textContent = "";
      for (const [step, count] of [["sent", group.sent], ["delivered", group.delivered], ["read", group.read]]) {
        const bar = document.createElement("div");
        bar.className = `bar ${step}`;
        bar.style.width = `${(100 * count) / most}%`;
        bar.title = `${step}: ${count}`;
        bars.appendChild(bar);
      }
      cell(row, `${group.delivered.toLocaleString()} (${percent(group.delivered_rate)})`);
      cell(row, `${group.read.toLocaleString()} (${percent(group.read_rate)})`);
      cell(row, group.failed.toLocaleString(), group.failed > 0 ? "bad" : "");
      tbody.appendChild(row);
    }
  } catch (error) {
    if (!onUnauthorized(error)) {
      emptyRow(tbody, 5, `Delivery stats ${describeError(error, "messages:read")}.`);
    }
  }
}

async function refreshMinutes() {
  try {
    const stats = await api("/v1/stats?by=minute&window=1h");
    state.clusterMinutes = (stats.groups || [])
      .map((group) => ({ at_ms: /^\d+$/.test(group.key) ? Number(group.key) : Date.parse(group.key), sent: group.sent }))
      .filter((minute) => !Number.isNaN(minute.at_ms));
  } catch (error) {
    state.clusterMinutes = null;
    onUnauthorized(error);
  }
  drawCharts();
}

// A message event asks for fresh funnels, at most once a second.
function funnelsSoon() {
  if (state.statsRefresh === null) {
    state.statsRefresh = setTimeout(() => {
      state.statsRefresh = null;
      refreshFunnels();
    }, 1000);
  }
}

// ---------------------------------------------------------------- regions

const regionRows = new Map();

async function refreshRegions() {
  const tbody = $("regions").tBodies[0];
  try {
    const answer = await api("/v1/regions");
    if (answer.regions.length === 0) {
      regionRows.clear();
      emptyRow(tbody, 6, "no upstream outcomes yet");
      return;
    }
    tbody.replaceChildren();
    regionRows.clear();
    for (const region of answer.regions) {
      const row = document.createElement("tr");
      regionRows.set(region.country_code, row);
      fillRegion(row, region.country_code, region.degraded, region.error_rate, region.p50_latency_ms, region.samples, region.changed_at);
      tbody.appendChild(row);
    }
  } catch (error) {
    if (!onUnauthorized(error)) {
      emptyRow(tbody, 6, `Regions ${describeError(error, "messages:read")}.`);
    }
  }
}

function fillRegion(row, countryCode, degraded, errorRate, p50, samples, changedAt) {
  row.replaceChildren();
  row.dataset.country = String(countryCode);
  row.dataset.degraded = String(degraded);
  cell(row, `+${countryCode}`);
  cell(row, degraded ? "degraded" : "healthy", "health");
  cell(row, percent(errorRate));
  cell(row, p50 === null || p50 === undefined ? null : `${p50} ms`);
  cell(row, samples);
  cell(row, changedAt ? clock(Date.parse(changedAt)) : null);
}

function onRegion(event) {
  let row = regionRows.get(event.country_code);
  const tbody = $("regions").tBodies[0];
  if (!row) {
    if (regionRows.size === 0) {
      tbody.replaceChildren();
    }
    row = document.createElement("tr");
    regionRows.set(event.country_code, row);
    tbody.appendChild(row);
  }
  const cells = row.children;
  const p50 = cells.length > 3 ? cells[3].textContent.replace(" ms", "") : null;
  const samples = cells.length > 4 ? cells[4].textContent : null;
  fillRegion(row, event.country_code, event.degraded, event.error_rate, p50, samples, new Date(event.at_ms).toISOString());
  flash(row);
}

function flash(row) {
  row.classList.remove("changed");
  // Restarts the animation.
  void row.offsetWidth;
  row.classList.add("changed");
}

// ---------------------------------------------------------------- health rules

async function refreshRules() {
  const tbody = $("rules").tBodies[0];
  try {
    const answer = await api("/v1/health/rules");
    $("rules-state").textContent = answer.degraded ? "The node is degraded by a rule." : "";
    if (answer.rules.length === 0) {
      emptyRow(tbody, 6, "no health rules configured");
      return;
    }
    tbody.replaceChildren();
    for (const rule of answer.rules) {
      const row = document.createElement("tr");
      row.dataset.rule = rule.name;
      row.dataset.state = rule.firing ? "firing" : "ok";
      // Per-template rules: the templates flagged for review (or about to be), with their read rate
      // against their own baseline.
      const subjects = (rule.subjects || [])
        .map((subject) => {
          const ratio = subject.value === null || subject.value === undefined ? "" : ` ${formatNumber(subject.value)}× baseline`;
          return `${subject.subject}${subject.firing ? " flagged for review" : " pending"}${ratio}`;
        })
        .join("; ");
      cell(row, subjects ? `${rule.name} (${subjects})` : rule.name);
      cell(row, rule.firing ? "firing" : "ok", "health");
      cell(row, rule.value === null || rule.value === undefined ? null : formatNumber(rule.value));
      cell(row, `${rule.metric} ${rule.direction === "below" ? "<" : ">"} ${formatNumber(rule.threshold)}`);
      cell(row, rule.action);
      cell(row, rule.last_fired_at ? clock(Date.parse(rule.last_fired_at)) : "never");
      tbody.appendChild(row);
    }
  } catch (error) {
    if (!onUnauthorized(error)) {
      $("rules-state").textContent = "";
      emptyRow(tbody, 6, error instanceof NotServed ? "This server has no health rules." : `Health rules ${describeError(error, "messages:read")}.`);
    }
  }
}

function onRule(event) {
  const log = $("rule-events");
  const placeholder = log.querySelector(".empty");
  if (placeholder) {
    placeholder.remove();
  }
  const item = document.createElement("li");
  item.className = event.state;
  const subject = event.subject ? ` on ${event.subject}` : "";
  item.textContent = `${clock(event.at_ms)} ${event.name}${subject} ${event.state}: ${formatNumber(event.value)} against ${formatNumber(event.threshold)} → ${event.action}`;
  log.prepend(item);
  while (log.children.length > 20) {
    log.lastElementChild.remove();
  }
  refreshRules();
}

// ---------------------------------------------------------------- plugins

async function refreshPlugins() {
  const tbody = $("plugins").tBodies[0];
  try {
    const answer = await api("/v1/plugins");
    if (answer.plugins.length === 0) {
      emptyRow(tbody, 8, "no plugins in the chain");
      return;
    }
    tbody.replaceChildren();
    for (const plugin of answer.plugins) {
      const row = document.createElement("tr");
      row.dataset.plugin = plugin.name;
      const stats = plugin.stats || { calls: 0, faults: 0, p50_us: null, p99_us: null };
      cell(row, plugin.position);
      cell(row, plugin.name);
      cell(row, plugin.live_version ? plugin.live_version.slice(0, 12) : null, "id");
      cell(row, plugin.quarantined ? "quarantined" : plugin.enabled ? "on" : "off", plugin.quarantined ? "bad" : "");
      cell(row, stats.calls.toLocaleString());
      cell(row, stats.p50_us === null ? null : `${stats.p50_us} µs`);
      cell(row, stats.p99_us === null ? null : `${stats.p99_us} µs`);
      cell(row, stats.faults.toLocaleString(), stats.faults > 0 ? "bad" : "");
      tbody.appendChild(row);
    }
  } catch (error) {
    if (!onUnauthorized(error)) {
      emptyRow(tbody, 8, `Plugins ${describeError(error, "plugins:read")}.`);
    }
  }
}

// ---------------------------------------------------------------- failures and messages

async function loadFailures() {
  const tbody = $("failures").tBodies[0];
  try {
    // A failure the fallback plugin took over ends `fell_back`, with Meta's code kept.
    const page = await api(`/v1/messages?status=failed,fell_back&limit=${FAILURES_SHOWN}`);
    tbody.replaceChildren();
    if (page.messages.length === 0) {
      emptyRow(tbody, 7, "no failures");
      return;
    }
    for (const message of page.messages) {
      tbody.appendChild(
        failureRow(Date.parse(message.updated_at), message.id, message.category, null, null, message.error_code, message.status),
      );
    }
  } catch (error) {
    if (!onUnauthorized(error)) {
      emptyRow(tbody, 7, `Failures ${describeError(error, "messages:read")}.`);
    }
  }
}

function failureRow(atMs, id, category, template, region, errorCode, status) {
  const row = document.createElement("tr");
  row.dataset.id = id;
  cell(row, clock(atMs));
  cell(row, shortId(id), "id").title = id;
  cell(row, category);
  cell(row, template);
  cell(row, region ? `+${region}` : null);
  cell(row, errorCode, "bad");
  cell(row, status === "fell_back" ? "fell back" : status);
  return row;
}

async function loadMessages() {
  try {
    const page = await api("/v1/messages?limit=20");
    for (const message of page.messages.reverse()) {
      showMessage({
        at_ms: Date.parse(message.updated_at),
        category: message.category,
        id: message.id,
        region: null,
        status: message.status,
        template: null,
      }, true);
    }
  } catch (error) {
    onUnauthorized(error);
  }
}

function showMessage(event, listed) {
  const tbody = $("messages").tBodies[0];
  const placeholder = tbody.querySelector("tr.placeholder");
  if (placeholder) {
    placeholder.remove();
  }
  let row = tbody.querySelector(`tr[data-id="${CSS.escape(event.id)}"]`);
  // The stream sends changes in the order they were committed, so the latest wins; a listing
  // read at start may be older than what the stream already showed.
  if (row && listed) {
    return;
  }
  if (!row) {
    row = document.createElement("tr");
    row.dataset.id = event.id;
  }
  const template = event.template || (row.children[3] ? row.children[3].textContent : null);
  const region = event.region ? `+${event.region}` : row.children[4] ? row.children[4].textContent : null;
  row.replaceChildren();
  row.dataset.status = event.status;
  cell(row, clock(event.at_ms));
  cell(row, shortId(event.id), "id").title = event.id;
  cell(row, event.category);
  cell(row, template === "–" ? null : template);
  cell(row, region === "–" ? null : region);
  const status = event.status.replace("_", " ");
  cell(row, event.error_code ? `${status} (${event.error_code})` : status, "status");
  tbody.prepend(row);
  while (tbody.children.length > MESSAGES_SHOWN) {
    tbody.lastElementChild.remove();
  }
}

function onMessage(event) {
  showMessage(event, false);
  if (event.status === "fell_back") {
    const failed = $("failures").tBodies[0].querySelector(`tr[data-id="${CSS.escape(event.id)}"]`);
    if (failed) {
      failed.lastElementChild.textContent = "fell back";
    }
  }
  if (event.status === "failed") {
    const tbody = $("failures").tBodies[0];
    const empty = tbody.querySelector(".empty");
    if (empty) {
      tbody.replaceChildren();
    }
    tbody.prepend(failureRow(event.at_ms, event.id, event.category, event.template, event.region, event.error_code, "failed"));
    while (tbody.children.length > FAILURES_SHOWN) {
      tbody.lastElementChild.remove();
    }
  }
  if (["sent", "delivered", "read", "failed"].includes(event.status)) {
    funnelsSoon();
  }
}

// ---------------------------------------------------------------- start and stop

function every(ms, task) {
  task();
  state.timers.push(setInterval(task, ms));
}

function start() {
  stop();
  connect();
  loadMessages();
  loadFailures();
  every(REFRESH_MS, refreshFunnels);
  every(REFRESH_MS, refreshRules);
  every(SLOW_REFRESH_MS, refreshRegions);
  every(SLOW_REFRESH_MS, refreshPlugins);
}

function stop() {
  if (state.stream) {
    state.stream.abort();
    state.stream = null;
  }
  clearTimeout(state.reconnectTimer);
  clearTimeout(state.statsRefresh);
  state.statsRefresh = null;
  for (const timer of state.timers) {
    clearInterval(timer);
  }
  state.timers = [];
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    const token = $("token").value.trim();
    $("token").value = "";
    if (token) {
      useToken(token);
    }
  });
  $("forget").addEventListener("click", () => askForToken("Token forgotten."));
  window.addEventListener("resize", drawCharts);
  const kept = sessionStorage.getItem(TOKEN_KEY);
  if (kept) {
    useToken(kept);
  } else {
    askForToken("");
  }
});
