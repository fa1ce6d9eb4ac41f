// WebSocket client of the socket gateway (DESIGN.md "WebSocket"): token in ?token=, room
// subscriptions kept across reconnects (resumed with `since` where the gateway can), a
// heartbeat, exponential back-off, and a connection state for the page to show.

const CLOSE_UNAUTHORIZED = 4401;

export class LiveSocket {
  /**
   * @param {() => string} url  the ws:// URL without the token
   * @param {() => string|null} token  current access token
   * @param {{onEvent: Function, onState: Function, onAuthFailed: () => Promise<boolean>}} handlers
   */
  constructor(url, token, handlers) {
    this.url = url;
    this.token = token;
    this.h = handlers;
    this.rooms = new Map(); // "chain:NIFTY" -> {type, symbol}
    this.last = new Map(); // room -> {seq, epoch} of the last data event received
    this.ws = null;
    this.state = "offline";
    this.retry = 0;
    this.stopped = true;
    this.timer = null;
    this.pinger = null;
  }

  _setState(state, detail = "") {
    this.state = state;
    this.h.onState(state, detail);
  }

  start() {
    this.stopped = false;
    this._connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000, "bye");
    this.ws = null;
    this._setState("offline");
  }

  subscribe(type, symbol) {
    const room = `${type}:${symbol}`;
    this.rooms.set(room, { type, symbol });
    this.last.delete(room); // a fresh subscription starts from the snapshot
    this._send({ action: "subscribe", type, symbol });
  }

  unsubscribe(type, symbol) {
    const room = `${type}:${symbol}`;
    if (!this.rooms.delete(room)) return;
    this.last.delete(room);
    this._send({ action: "unsubscribe", type, symbol });
  }

  _send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  _connect() {
    if (this.stopped) return;
    const token = this.token();
    if (!token) { this._setState("offline", "not logged in"); return; }
    this._setState(this.retry ? "reconnecting" : "connecting");
    let ws;
    try {
      ws = new WebSocket(`${this.url()}?token=${encodeURIComponent(token)}`);
    } catch (e) {
      this._setState("error", String(e));
      return this._later();
    }
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 0;
      for (const [room, { type, symbol }] of this.rooms) {
        const seen = this.last.get(room);
        // Resume where we were; the gateway answers `resync` + snapshot if it cannot.
        const resume = seen ? { since: seen.seq, epoch: seen.epoch || undefined } : {};
        this._send({ action: "subscribe", type, symbol, ...resume });
      }
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this._send({ action: "ping" }), 15000);
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch { return; }
      if (msg.event === "connected") this._setState("live", msg.user || "");
      if (msg.room && typeof msg.seq === "number" && msg.data) {
        if (!this.rooms.has(msg.room) && msg.room !== "general") return; // left meanwhile
        this.last.set(msg.room, { seq: msg.seq, epoch: msg.epoch });
      }
      this.h.onEvent(msg);
    };
    ws.onclose = async (ev) => {
      clearInterval(this.pinger);
      if (this.ws !== ws) return; // an older socket
      this.ws = null;
      if (this.stopped) return;
      if (ev.code === CLOSE_UNAUTHORIZED) {
        this._setState("reconnecting", "token expired, refreshing");
        if (!(await this.h.onAuthFailed())) { this._setState("offline", "logged out"); return; }
        this.retry = 0;
        return this._connect();
      }
      this._setState("reconnecting", ev.reason || `closed (${ev.code})`);
      this._later();
    };
    ws.onerror = () => { /* onclose follows */ };
  }

  _later() {
    this.retry += 1;
    const delay = Math.min(10000, 500 * 2 ** Math.min(this.retry, 5)) * (0.75 + Math.random() / 2);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this._connect(), delay);
  }
}
