// The option chain table: calls | strike | puts, updated in place (cells flash when they
// change), ATM and max-pain rows and in-the-money cells highlighted.

const int = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const fixed = (d) => (v) => (v === null || v === undefined || Number.isNaN(v) ? "–" : Number(v).toFixed(d));
const pct = (v) => (v === null || v === undefined || Number.isNaN(v) ? "–" : (100 * v).toFixed(1) + "%");
const count = (v) => (v === null || v === undefined ? "–" : int.format(v));

// [field, formatter]; the put side shows the same columns mirrored.
const COLUMNS = [
  ["open_interest", count], ["volume", count], ["iv", pct], ["delta", fixed(3)],
  ["gamma", fixed(5)], ["theta", fixed(2)], ["vega", fixed(2)], ["last", fixed(2)],
];

export function formatStrike(k) {
  return Number.isInteger(k) ? String(k) : Number(k).toFixed(2);
}

/** Nearest strike to spot (what the processors call ATM). */
export function atmStrike(strikes, spot) {
  let best = null;
  for (const k of strikes) if (best === null || Math.abs(k - spot) < Math.abs(best - spot)) best = k;
  return best;
}

/** Strike where option writers pay least at expiry (fallback until chain analytics arrive). */
export function maxPainStrike(chain) {
  const calls = chain.calls || [], puts = chain.puts || [];
  let best = null, bestPain = Infinity;
  for (const s of chain.strikes) {
    let pain = 0;
    for (const c of calls) if (s > c.strike) pain += (s - c.strike) * c.open_interest;
    for (const p of puts) if (s < p.strike) pain += (p.strike - s) * p.open_interest;
    if (pain < bestPain) { bestPain = pain; best = s; }
  }
  return best;
}

export class ChainTable {
  constructor(table, empty) {
    this.tbody = table.querySelector("tbody");
    this.empty = empty;
    this.rows = new Map(); // strike -> {tr, cells: {"C:iv": td, ...}}
    this.key = "";
    this.updates = 0;
  }

  clear() {
    this.tbody.replaceChildren();
    this.rows.clear();
    this.key = "";
    this.empty.hidden = false;
  }

  _build(strikes) {
    this.tbody.replaceChildren();
    this.rows.clear();
    for (const k of strikes) {
      const tr = document.createElement("tr");
      tr.dataset.strike = String(k);
      const cells = {};
      const add = (side, field) => {
        const td = document.createElement("td");
        td.dataset.field = `${side}:${field}`;
        cells[td.dataset.field] = td;
        tr.appendChild(td);
      };
      for (const [f] of COLUMNS) add("C", f);
      const strike = document.createElement("td");
      strike.className = "strike";
      strike.textContent = formatStrike(k);
      tr.appendChild(strike);
      for (const [f] of [...COLUMNS].reverse()) add("P", f);
      this.tbody.appendChild(tr);
      this.rows.set(k, { tr, cells });
    }
  }

  /** Show `chain` (an option_chain record); `marks` = {atm, maxPain} strikes. */
  render(chain, marks) {
    const strikes = chain.strikes || [];
    const key = `${chain.product}|${chain.expiry}|${strikes.join(",")}`;
    const fresh = key !== this.key;
    if (fresh) { this._build(strikes); this.key = key; }
    this.empty.hidden = strikes.length > 0;
    const sides = [["C", chain.calls || []], ["P", chain.puts || []]];
    for (const [side, quotes] of sides) {
      for (const q of quotes) {
        const row = this.rows.get(q.strike);
        if (!row) continue;
        const itm = side === "C" ? q.strike < chain.spot_price : q.strike > chain.spot_price;
        for (const [field, fmt] of COLUMNS) {
          const td = row.cells[`${side}:${field}`];
          const text = fmt(q[field]);
          td.classList.toggle("itm", itm);
          if (td.textContent === text) continue;
          if (!fresh) {
            const before = parseFloat(td.dataset.raw);
            td.classList.remove("flash-up", "flash-down");
            void td.offsetWidth; // restart the animation
            td.classList.add(q[field] >= before ? "flash-up" : "flash-down");
          }
          td.textContent = text;
          td.dataset.raw = String(q[field]);
        }
      }
    }
    this.mark(marks);
    this.updates += 1;
  }

  mark({ atm, maxPain }) {
    for (const [k, { tr }] of this.rows) {
      tr.classList.toggle("atm", k === atm);
      tr.classList.toggle("maxpain", k === maxPain);
    }
  }
}
