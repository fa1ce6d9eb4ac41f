// The dashboard: login, product/expiry pickers, and every panel fed from REST (history,
// first paint) then from the WebSocket (live). Panels without a live event (stored OHLC
// bars, the volatility surface) are re-read every few seconds.
import { Api } from "./api.js";
import { LiveSocket } from "./live.js";
import { ChainTable, atmStrike, formatStrike, maxPainStrike } from "./chain.js";
import { CandleChart, PcrChart } from "./charts.js";
import { SurfaceHeatmap } from "./heatmap.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = { ohlc: 15000, surface: 10000 };
const PICK = "deltastream.pick";

const state = {
  config: null, product: null, expiry: null,
  loading: false, // a product is being loaded: live chains are only cached meanwhile
  chains: new Map(), // expiry -> latest option_chain record of the product
  summaries: new Map(), // expiry -> latest chain analytics
  spot: null,
  counts: { chain_update: 0, chain_summary: 0, underlying_update: 0, error: 0, resync: 0, skipped: 0 },
};
window.__dashboard = state; // for tests and curious users (read-only use)

let api, live, table, candles, pcr, surface, timers = [];

function status(text) { $("status").textContent = `${new Date().toLocaleTimeString()}  ${text}`; }
function fmt(v, d = 2) { return v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(d); }

// -- views ------------------------------------------------------------------------------------
function showLogin(message = "") {
  $("login-view").hidden = false; $("dash-view").hidden = true; $("logout").hidden = true;
  $("user").textContent = ""; $("login-error").textContent = message;
  if (live) live.stop();
  timers.forEach(clearInterval); timers = [];
}

async function showDashboard() {
  $("login-view").hidden = true; $("dash-view").hidden = false; $("logout").hidden = false;
  $("user").textContent = api.email;
  if (!table) {
    table = new ChainTable($("chain"), $("chain-empty"));
    candles = new CandleChart($("candles"));
    pcr = new PcrChart($("pcr-chart"));
    surface = new SurfaceHeatmap($("surface"));
  }
  live.start();
  timers = [setInterval(() => loadOhlc().catch(report), REFRESH_MS.ohlc),
            setInterval(() => loadSurface().catch(report), REFRESH_MS.surface)];
  await loadProducts();
}

function report(err) {
  state.counts.error += 1;
  status(`error: ${err.message || err}`);
}

// -- pickers ------------------------------------------------------------------------------------
function fill(select, values, chosen) {
  const current = [...select.options].map((o) => o.value);
  if (current.join() !== values.join()) {
    select.replaceChildren(...values.map((v) => new Option(v, v)));
  }
  if (chosen && values.includes(chosen)) select.value = chosen;
}

async function loadProducts() {
  const res = await api.get("/data/products");
  const products = (res && res.products && res.products.length) ? res.products : state.config.products;
  const saved = JSON.parse(localStorage.getItem(PICK) || "{}");
  const first = products.includes(saved.product) ? saved.product : products[0];
  fill($("product"), products, first);
  await selectProduct(first, saved.expiry);
}

async function selectProduct(product, preferExpiry = null) {
  if (state.product && state.product !== product) {
    live.unsubscribe("chain", state.product);
    live.unsubscribe("product", state.product);
  }
  state.product = product; state.expiry = null;
  state.chains.clear(); state.summaries.clear(); state.spot = null;
  table.clear(); candles.clear(); pcr.clear(); surface.clear();
  for (const id of ["spot", "spot-change", "atm", "atm-iv", "max-pain", "pcr-oi", "pcr-vol", "straddle", "chain-time"]) {
    $(id).textContent = "–";
  }
  $("spot-change").textContent = "";
  live.subscribe("chain", product);
  live.subscribe("product", product);
  state.loading = true;
  let expiry;
  try {
    const res = await api.get(`/data/expiries/${product}`);
    if (product !== state.product) return; // picked another product meanwhile
    // Stored expiries, plus any the socket's snapshot brought meanwhile.
    const expiries = [...new Set([...((res && res.expiries) || []), ...state.chains.keys()])].sort();
    fill($("expiry"), expiries, preferExpiry);
    expiry = expiries.includes(preferExpiry) ? preferExpiry : expiries[0];
    await Promise.all([loadOhlc().catch(report), loadSurface().catch(report), loadSpot().catch(report)]);
  } finally {
    if (product === state.product) state.loading = false;
  }
  if (product !== state.product) return;
  if (expiry) await selectExpiry(expiry);
  else status(`${product}: no expiries stored yet; waiting for live data`);
}

async function selectExpiry(expiry) {
  state.expiry = expiry;
  $("expiry").value = expiry;
  localStorage.setItem(PICK, JSON.stringify({ product: state.product, expiry }));
  pcr.clear();
  const product = state.product;
  const [chain, trends, pain] = await Promise.all([
    api.get(`/data/chain/${product}/${expiry}`).catch(report),
    api.get(`/analytics/pcr_trends/${product}`, { expiry }).catch(report),
    api.get(`/analytics/max_pain/${product}`).catch(report),
  ]);
  if (product !== state.product || expiry !== state.expiry) return; // picked something else meanwhile
  if (trends) pcr.setHistory(trends.points || []);
  // The newest max pain known: a live summary if one came, else the stored one.
  const row = pain && (pain.expiries || []).find((r) => r.expiry === expiry);
  const known = state.summaries.get(expiry) || row;
  if (known) pcr.add({ timestamp: known.timestamp, max_pain_strike: known.max_pain_strike });
  if (chain) newerChain(chain);
  renderExpiry();
  status(`${product} ${expiry}: loaded`);
}

// -- data ---------------------------------------------------------------------------------------
function newerChain(chain) {
  const had = state.chains.get(chain.expiry);
  if (had && Date.parse(had.timestamp) > Date.parse(chain.timestamp)) return false;
  state.chains.set(chain.expiry, chain);
  return true;
}

function renderExpiry() {
  const chain = state.chains.get(state.expiry);
  if (!chain) return;
  const summary = state.summaries.get(state.expiry);
  // The processors' analytics of this very snapshot when they have arrived; else computed here.
  const fresh = summary && summary.timestamp === chain.timestamp;
  const strikes = [...chain.strikes].sort((a, b) => a - b);
  const atm = fresh ? summary.atm_strike : atmStrike(strikes, chain.spot_price);
  const maxPain = fresh ? summary.max_pain_strike : maxPainStrike({ ...chain, strikes });
  table.render(chain, { atm, maxPain });
  $("atm").textContent = formatStrike(atm);
  $("max-pain").textContent = formatStrike(maxPain);
  $("chain-time").textContent = new Date(chain.timestamp).toLocaleTimeString();
  if (state.spot === null) showSpot(chain.spot_price);
  if (summary) showSummary(summary);
}

function showSummary(s) {
  $("atm-iv").textContent = s.atm_iv === null ? "–" : `${(100 * s.atm_iv).toFixed(2)}%`;
  $("pcr-oi").textContent = fmt(s.pcr_oi, 3);
  $("pcr-vol").textContent = fmt(s.pcr_volume, 3);
  $("straddle").textContent = fmt(s.atm_straddle_price);
}

function showSpot(price, tick = null) {
  state.spot = price;
  $("spot").textContent = fmt(price);
  if (tick && tick.change !== undefined && tick.change !== null) {
    const el = $("spot-change");
    el.textContent = `${tick.change >= 0 ? "+" : ""}${fmt(tick.change)} (${fmt(tick.change_pct)}%)`;
    el.className = tick.change >= 0 ? "up" : "down";
  }
}

async function loadSpot() {
  const res = await api.get(`/data/underlying/${state.product}`, { limit: 1 });
  const tick = res && res.ticks && res.ticks[res.ticks.length - 1];
  if (tick && state.spot === null) showSpot(tick.price);
}

async function loadOhlc() {
  if (!state.product) return;
  const product = state.product;
  const res = await api.get(`/analytics/ohlc/${product}`, { interval: "1m", limit: 300 });
  if (res && product === state.product) candles.setBars(res.bars || []);
}

async function loadSurface() {
  if (!state.product) return;
  const product = state.product;
  const res = await api.get(`/analytics/volatility_surface/${product}`);
  if (product !== state.product) return;
  if (res) {
    surface.set(res);
    $("surface-time").textContent = `as of ${new Date(res.timestamp).toLocaleTimeString()}, spot ${fmt(res.spot_price)}`;
  }
}

// -- live events ----------------------------------------------------------------------------------
function onEvent(msg) {
  // `general` repeats what `product:{P}` (which we join) sends for the product shown.
  if (msg.room === "general") return;
  if (msg.event in state.counts) state.counts[msg.event] += 1;
  const d = msg.data;
  switch (msg.event) {
    case "chain_update":
      if (!d || d.product !== state.product) return;
      if (!newerChain(d)) return;
      if (![...$("expiry").options].some((o) => o.value === d.expiry)) {
        const all = [...new Set([...[...$("expiry").options].map((o) => o.value), d.expiry])].sort();
        fill($("expiry"), all, state.expiry);
      }
      if (state.expiry === null && !state.loading) selectExpiry(d.expiry).catch(report);
      else if (d.expiry === state.expiry) renderExpiry();
      return;
    case "chain_summary":
      if (!d || d.product !== state.product) return;
      state.summaries.set(d.expiry, d);
      if (d.expiry === state.expiry) { pcr.add(d); renderExpiry(); showSummary(d); }
      return;
    case "underlying_update":
      if (!d || d.product !== state.product) return;
      showSpot(d.price, d);
      candles.tick(d.price, d.timestamp);
      return;
    case "resync":
      status(`resync ${msg.room}: ${msg.reason}`);
      return;
    case "skipped":
      status(`the connection fell behind; skipped ahead in ${msg.room || "a room"}`);
      return;
    case "error":
      status(`server: ${msg.message}`);
      return;
    default:
  }
}

function onState(s, detail) {
  const el = $("conn");
  el.dataset.state = s;
  el.textContent = s;
  el.title = detail || "WebSocket connection";
}

function socketUrl() {
  const c = state.config;
  if (c.socket_url) return c.socket_url;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  return `${scheme}://${location.hostname}:${c.socket_port}${c.socket_path}`;
}

// -- start ------------------------------------------------------------------------------------------
async function main() {
  state.config = await (await fetch("config.json")).json();
  api = new Api(state.config.api_prefix);
  api.onLogout = (why) => showLogin(why);
  live = new LiveSocket(socketUrl, () => api.accessToken,
                        { onEvent, onState, onAuthFailed: () => api.refresh() });

  const creds = () => [$("email").value.trim(), $("password").value];
  const enter = (fn) => async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      await fn(...creds());
      await showDashboard();
    } catch (e) {
      $("login-error").textContent = e.message || String(e);
    }
  };
  $("login-form").addEventListener("submit", enter((e, p) => api.login(e, p)));
  $("register-btn").addEventListener("click", enter((e, p) => api.register(e, p)));
  $("logout").addEventListener("click", () => api.logout(""));
  $("product").addEventListener("change", (e) => selectProduct(e.target.value).catch(report));
  $("expiry").addEventListener("change", (e) => selectExpiry(e.target.value).catch(report));

  if (api.loggedIn) await showDashboard().catch((e) => showLogin(e.message));
  else showLogin();
}

main().catch((e) => { document.body.textContent = `Dashboard failed to start: ${e.message || e}`; });
