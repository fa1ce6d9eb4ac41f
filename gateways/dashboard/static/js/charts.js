// Time-series charts on the vendored TradingView Lightweight Charts (static/vendor):
// 1-minute candles of the spot (bars from /api/analytics/ohlc, the open bar moved by live
// ticks), and PCR + max pain over time (from /api/analytics/pcr_trends and max_pain, then
// the live chain_summary events).
import { CandlestickSeries, ColorType, LineSeries, createChart } from "../vendor/lightweight-charts.standalone.production.mjs";

const THEME = {
  // attributionLogo stays on: the library's licence asks for the TradingView attribution.
  layout: { background: { type: ColorType.Solid, color: "#171e2e" }, textColor: "#8a94ab" },
  grid: { vertLines: { color: "#1f2840" }, horzLines: { color: "#1f2840" } },
  timeScale: { timeVisible: true, secondsVisible: false, borderColor: "#26304a" },
  rightPriceScale: { borderColor: "#26304a" },
  leftPriceScale: { borderColor: "#26304a" },
  autoSize: true,
};

export const toSeconds = (iso) => Math.floor(Date.parse(iso) / 1000);
const BAR_SECONDS = { "1m": 60, "5m": 300, "15m": 900 };

export class CandleChart {
  constructor(el, interval = "1m") {
    this.chart = createChart(el, { ...THEME, timeScale: { ...THEME.timeScale, rightOffset: 3, barSpacing: 12 } });
    this.series = this.chart.addSeries(CandlestickSeries, {
      upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
      wickUpColor: "#26a69a", wickDownColor: "#ef5350",
    });
    this.step = BAR_SECONDS[interval];
    this.last = null; // the newest bar shown {time, open, high, low, close}
  }

  /** Replace everything with stored bars (oldest first, as the API returns them). */
  setBars(bars) {
    const byTime = new Map();
    for (const b of bars) {
      byTime.set(toSeconds(b.start_time), { time: toSeconds(b.start_time), open: b.open, high: b.high,
                                            low: b.low, close: b.close });
    }
    const data = [...byTime.values()].sort((a, b) => a.time - b.time);
    // A live tick may already have moved the open bar past what the store has.
    if (this.last && data.length && this.last.time >= data[data.length - 1].time) {
      const tail = data[data.length - 1];
      if (this.last.time === tail.time) {
        this.last = { ...tail, high: Math.max(tail.high, this.last.high),
                      low: Math.min(tail.low, this.last.low), close: this.last.close };
        data[data.length - 1] = this.last;
      } else data.push(this.last);
    } else this.last = data.length ? data[data.length - 1] : null;
    this.series.setData(data);
    if (data.length) this.chart.timeScale().scrollToRealTime();
  }

  /** Fold one underlying tick into the open bar (a new bar when its window starts). */
  tick(price, iso) {
    const t = toSeconds(iso);
    const start = t - (t % this.step);
    if (this.last && start < this.last.time) return; // older than the bar shown
    if (!this.last || start > this.last.time) {
      this.last = { time: start, open: price, high: price, low: price, close: price };
    } else {
      this.last = { ...this.last, high: Math.max(this.last.high, price),
                    low: Math.min(this.last.low, price), close: price };
    }
    this.series.update(this.last);
  }

  clear() { this.last = null; this.series.setData([]); }
}

export class PcrChart {
  // Two panes on one time axis: PCR (OI) above, the max-pain strike below.
  constructor(el) {
    this.chart = createChart(el, THEME);
    this.pcr = this.chart.addSeries(LineSeries, { color: "#4f8cff", lineWidth: 2, title: "PCR (OI)" }, 0);
    this.pain = this.chart.addSeries(LineSeries, { color: "#e79bf0", lineWidth: 2, lineType: 1,
                                                   pointMarkersVisible: true, title: "max pain" }, 1);
    const [top, bottom] = this.chart.panes();
    top.setStretchFactor(0.6); bottom.setStretchFactor(0.4);
    this.lastTime = { pcr: 0, pain: 0 };
  }

  clear() {
    this.pcr.setData([]); this.pain.setData([]);
    this.lastTime = { pcr: 0, pain: 0 };
  }

  /** History: points of one expiry (pcr_trends `points`, oldest first). */
  setHistory(points) {
    const pcr = new Map(), pain = new Map();
    for (const p of points) {
      const t = toSeconds(p.timestamp);
      if (p.pcr_oi !== null && p.pcr_oi !== undefined) pcr.set(t, p.pcr_oi);
      if (p.max_pain_strike) pain.set(t, p.max_pain_strike); // if the API includes it
    }
    const series = (m) => [...m.entries()].sort((a, b) => a[0] - b[0]).map(([time, value]) => ({ time, value }));
    const a = series(pcr), b = series(pain);
    this.pcr.setData(a); this.pain.setData(b);
    this.lastTime = { pcr: a.length ? a[a.length - 1].time : 0, pain: b.length ? b[b.length - 1].time : 0 };
    this.chart.timeScale().fitContent();
  }

  /** One live chain_summary (chain analytics) of the shown expiry. */
  add(summary) {
    const t = toSeconds(summary.timestamp);
    if (summary.pcr_oi !== null && summary.pcr_oi !== undefined && t >= this.lastTime.pcr) {
      this.pcr.update({ time: t, value: summary.pcr_oi });
      this.lastTime.pcr = t;
    }
    if (summary.max_pain_strike && t >= this.lastTime.pain) {
      this.pain.update({ time: t, value: summary.max_pain_strike });
      this.lastTime.pain = t;
    }
  }
}
