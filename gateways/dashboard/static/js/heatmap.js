// The volatility surface as a canvas heatmap: one row per expiry (nearest at the top), one
// cell per strike placed by moneyness K/S (each cell spans halfway to its neighbours), the
// colour the IV. Hovering a cell shows expiry, strike and IV. No library needed.

// Viridis-like ramp (low IV dark blue → high IV yellow).
const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function color(t) {
  if (!Number.isFinite(t)) return "#2a2f3a";
  const x = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
  const i = Math.min(RAMP.length - 2, Math.floor(x)), f = x - i;
  const c = RAMP[i].map((v, k) => Math.round(v + (RAMP[i + 1][k] - v) * f));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}

const PAD = { left: 78, right: 58, top: 8, bottom: 30 };

export class SurfaceHeatmap {
  constructor(el) {
    this.el = el;
    this.canvas = el.querySelector("canvas");
    this.tip = el.querySelector(".tip");
    this.surface = null;
    this.cells = [];
    new ResizeObserver(() => this.draw()).observe(el);
    this.canvas.addEventListener("mousemove", (e) => this._hover(e));
    this.canvas.addEventListener("mouseleave", () => { this.tip.hidden = true; });
  }

  set(surface) {
    this.surface = surface;
    this.draw();
  }

  clear() { this.surface = null; this.draw(); }

  draw() {
    const { canvas } = this;
    const dpr = window.devicePixelRatio || 1;
    const w = this.el.clientWidth, h = this.el.clientHeight;
    if (!w || !h) return;
    canvas.width = Math.round(w * dpr); canvas.height = Math.round(h * dpr);
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#8a94ab";
    this.cells = [];
    const rows = (this.surface && this.surface.expiries || []).filter((e) => (e.strikes || []).length);
    if (!rows.length) { g.fillText("Waiting for a volatility surface…", PAD.left, h / 2); return; }

    const ivs = rows.flatMap((e) => e.ivs).filter(Number.isFinite);
    const lo = Math.min(...ivs), hi = Math.max(...ivs);
    const ms = rows.flatMap((e) => e.moneyness);
    const mLo = Math.min(...ms), mHi = Math.max(...ms);
    const plotW = w - PAD.left - PAD.right, plotH = h - PAD.top - PAD.bottom;
    const x = (m) => PAD.left + (mHi > mLo ? (m - mLo) / (mHi - mLo) : 0.5) * plotW;
    const rowH = plotH / rows.length;

    rows.forEach((e, r) => {
      const y0 = PAD.top + r * rowH;
      const m = e.moneyness;
      for (let i = 0; i < m.length; i++) {
        const left = i === 0 ? x(m[0]) : (x(m[i - 1]) + x(m[i])) / 2;
        const right = i === m.length - 1 ? x(m[i]) + (m.length > 1 ? 0 : plotW) : (x(m[i]) + x(m[i + 1])) / 2;
        const iv = e.ivs[i];
        g.fillStyle = color(hi > lo ? (iv - lo) / (hi - lo) : 0.5);
        const cellW = Math.max(1, right - left + 0.5);
        g.fillRect(left, y0, cellW, rowH - 1);
        this.cells.push({ x0: left, x1: left + cellW, y0, y1: y0 + rowH, expiry: e.expiry,
                          strike: e.strikes[i], m: m[i], iv });
      }
      g.fillStyle = "#8a94ab";
      g.textAlign = "right";
      g.fillText(`${e.expiry}`, PAD.left - 6, y0 + rowH / 2 + 4);
    });

    // x axis: moneyness ticks, and the spot (K/S = 1)
    g.textAlign = "center";
    for (let k = 0; k <= 4; k++) {
      const m = mLo + ((mHi - mLo) * k) / 4;
      g.fillText(m.toFixed(3), x(m), h - PAD.bottom + 14);
    }
    if (mLo <= 1 && mHi >= 1) {
      g.strokeStyle = "#ffffffaa"; g.setLineDash([4, 3]);
      g.beginPath(); g.moveTo(x(1), PAD.top); g.lineTo(x(1), PAD.top + plotH); g.stroke();
      g.setLineDash([]);
    }
    g.fillText("moneyness K/S", PAD.left + plotW / 2, h - 4);

    // legend: the colour ramp with the IV range
    const lx = w - PAD.right + 14, lw = 10;
    for (let p = 0; p < plotH; p++) {
      g.fillStyle = color(1 - p / plotH);
      g.fillRect(lx, PAD.top + p, lw, 1);
    }
    g.fillStyle = "#8a94ab"; g.textAlign = "left";
    g.fillText(`${(100 * hi).toFixed(1)}%`, lx + lw + 2, PAD.top + 9);
    g.fillText(`${(100 * lo).toFixed(1)}%`, lx + lw + 2, PAD.top + plotH);
  }

  _hover(ev) {
    const r = this.canvas.getBoundingClientRect();
    const px = ev.clientX - r.left, py = ev.clientY - r.top;
    const c = this.cells.find((c) => px >= c.x0 && px < c.x1 && py >= c.y0 && py < c.y1);
    if (!c) { this.tip.hidden = true; return; }
    const iv = Number.isFinite(c.iv) ? `${(100 * c.iv).toFixed(2)}%` : "n/a";
    this.tip.textContent = `${c.expiry}  K ${c.strike}  (K/S ${c.m.toFixed(3)})  IV ${iv}`;
    this.tip.hidden = false;
    this.tip.style.left = `${Math.min(px + 12, r.width - 220)}px`;
    this.tip.style.top = `${py + 12}px`;
  }
}
