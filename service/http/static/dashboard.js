// Dyna-Cache dashboard: reads /v1/dashboard (the same numbers as /v1/stats, plus the closest
// misses and the most-served entries) every REFRESH_MS. No build step, no CDN.
"use strict";

const REFRESH_MS = 2000;
const HISTORY = 60;
const TOKEN_KEY = "dyna-cache-admin-token";
const PERSONAL = "(personal: hidden)";
const hitRates = [];

const $ = (id) => document.getElementById(id);
const fixed = (value, digits) => Number(value || 0).toFixed(digits);
const percent = (rate) => `${(100 * rate).toFixed(1)}%`;

function setText(id, text) {
  $(id).textContent = text;
}

function cell(row, text, numeric) {
  const td = row.insertCell();
  td.textContent = text;
  if (numeric) td.className = "num";
  return td;
}

function fillTable(id, rows, columns) {
  const body = $(id).tBodies[0];
  body.replaceChildren();
  for (const item of rows) {
    const row = body.insertRow();
    for (const [value, numeric] of columns(item)) cell(row, value, numeric);
  }
}

function seconds(ms) {
  const s = ms / 1000;
  return s >= 3600 ? `${(s / 3600).toFixed(1)} h` : s >= 60 ? `${(s / 60).toFixed(1)} min` : `${s.toFixed(1)} s`;
}

function drawHistory() {
  const canvas = $("hit-rate-history");
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  if (hitRates.length < 2) return;
  ctx.strokeStyle = "#2563eb";
  ctx.lineWidth = 2;
  ctx.beginPath();
  hitRates.forEach((rate, i) => {
    const x = (i / (HISTORY - 1)) * canvas.width;
    const y = canvas.height - rate * (canvas.height - 4) - 2;
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
}

// what the decision stage in force means, in an operator's words
const DECISION_WORDS = {
  "pair-model": "answers judged by the trained model",
  "verifier": "answers judged by the verifier",
  "static": "answers served by distance alone",
};

function render(data) {
  const stats = data.stats;
  setText("hit-rate", percent(stats.hit_rate));
  setText("requests", String(stats.requests));
  setText("hits", String(stats.hits));
  setText("misses", String(stats.misses));
  setText("bypasses", String(stats.bypasses));
  setText("entries", String(stats.entries));
  setText("evictions", String(stats.evictions));
  setText("cost-saved", `$${fixed(stats.cost_saved_usd, 4)}`);
  setText("latency-saved", seconds(stats.latency_saved_ms));
  setText("tokens-saved", String(stats.tokens_saved));
  // the audited wrong-answer rate of served semantic HITs, with its 95 % interval
  const wrong = stats.wrong_answer_rate;
  if (wrong && wrong.audits > 0) {
    setText("wrong-rate", percent(wrong.estimate));
    setText("wrong-interval",
      `95 % interval ${percent(wrong.low)}–${percent(wrong.high)} · audits: ${wrong.audits} ($${fixed(wrong.cost_usd, 4)})`);
  }
  if (!stats.audits.enabled) setText("wrong-interval", `audits off: ${stats.audits.reason}`);
  // shadow mode: what the cache would have served while the LLM answered every request
  const shadow = stats.shadow;
  $("shadow").hidden = !shadow;
  if (shadow) {
    setText("shadow-hit-rate", percent(shadow.hit_rate));
    setText("shadow-exact", percent(shadow.exact_hit_rate));
    setText("shadow-semantic", percent(shadow.semantic_hit_rate));
    setText("shadow-saved", `$${fixed(shadow.cost_saved_usd, 4)}`);
    const rate = shadow.wrong_answer_rate;
    setText("shadow-wrong", rate.audits > 0
      ? `${percent(rate.estimate)} (${percent(rate.low)}–${percent(rate.high)}, ${rate.audits} compared)`
      : "none compared yet");
  }
  for (const outcome of ["hit", "miss"]) {
    const latency = stats.latency_ms[outcome];
    for (const p of ["p50", "p95", "p99"]) setText(`${outcome}-${p}`, fixed(latency[p], 1));
    setText(`${outcome}-mean`, fixed(stats[`avg_${outcome}_latency_ms`], 1));
  }
  const version = stats.decision.version ? ` (${stats.decision.version})` : "";
  setText("decision", (DECISION_WORDS[stats.decision.stage] ?? stats.decision.stage) + version);
  const llm = stats.llm;
  const simulated = llm.mode === "simulated";
  setText("llm", simulated ? "simulated LLM: answers are made up" : `LLM: ${llm.model} at ${llm.base_url}`);
  document.getElementById("llm").classList.toggle("warn", simulated);
  setText("price-per-call", `at $${llm.price_per_call_usd} a call`);
  fillTable("namespaces", Object.entries(stats.namespaces).sort(), ([ns, n]) => [
    [ns, false], [String(n.entries), true], [String(n.requests), true],
    [percent(n.hit_rate), true], [fixed(n.latency_ms.hit.p50, 1), true],
    [fixed(n.cost_saved_usd, 4), true],
  ]);
  const misses = [];
  const served = [];
  for (const [ns, found] of Object.entries(data.insights)) {
    for (const miss of found.closest_misses) misses.push({ ns, ...miss });
    for (const entry of found.most_served) served.push({ ns, ...entry });
  }
  misses.sort((a, b) => a.distance - b.distance);
  served.sort((a, b) => b.hits - a.hits);
  // a per-user prompt comes redacted (null), unless the operator shows them
  fillTable("closest-misses", misses.slice(0, 10), (m) => [
    [m.ns, false], [m.prompt ?? PERSONAL, false],
    [m.nearest_prompt ?? (m.personal ? PERSONAL : "(gone)"), false],
    [fixed(m.similarity, 3), true],
  ]);
  fillTable("most-served", served.slice(0, 10), (e) => [
    [e.ns, false], [e.prompt ?? PERSONAL, false], [String(e.hits), true],
  ]);
  hitRates.push(stats.hit_rate);
  if (hitRates.length > HISTORY) hitRates.shift();
  drawHistory();
  setText("status", `updated ${new Date().toLocaleTimeString()}`);
}

async function refresh() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  const headers = token ? { Authorization: `Bearer ${token}` } : {};
  try {
    const response = await fetch("/v1/dashboard", { headers });
    if (response.status === 401 || response.status === 403) {
      sessionStorage.removeItem(TOKEN_KEY);
      $("board").hidden = true;
      $("login").hidden = false;
      setText("login-error", token ? "that token is not the admin token" : "");
      setText("status", "admin token needed");
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    $("login").hidden = true;
    $("board").hidden = false;
  } catch (error) {
    setText("status", `cannot refresh: ${error.message}`);
  }
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value);
  refresh();
});

refresh();
setInterval(refresh, REFRESH_MS);
