// REST client: login/register/refresh, and data GETs with `Authorization: Bearer`.
// Tokens live in sessionStorage (gone with the tab); a 401 triggers one refresh attempt.

const STORE = "deltastream.tokens";

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

export class Api {
  constructor(prefix = "/api") {
    this.prefix = prefix;
    this.tokens = JSON.parse(sessionStorage.getItem(STORE) || "null");
    this.onLogout = () => {};
    this._refreshing = null;
  }

  get loggedIn() { return !!(this.tokens && this.tokens.access_token); }
  get accessToken() { return this.tokens ? this.tokens.access_token : null; }
  get email() { return this.tokens ? this.tokens.email : ""; }

  _save(tokens) {
    this.tokens = tokens;
    if (tokens) sessionStorage.setItem(STORE, JSON.stringify(tokens));
    else sessionStorage.removeItem(STORE);
  }

  async _post(path, body) {
    const r = await fetch(this.prefix + path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new ApiError(r.status, data.detail || r.statusText);
    return data;
  }

  async login(email, password) {
    const pair = await this._post("/auth/login", { email, password });
    this._save({ ...pair, email });
    return pair;
  }

  async register(email, password) {
    try {
      await this._post("/auth/register", { email, password });
    } catch (e) {
      if (e.status !== 409) throw e; // already registered: just log in
    }
    return this.login(email, password);
  }

  logout(why = "Session ended; please log in again.") {
    this._save(null);
    this.onLogout(why);
  }

  /** A new token pair from the refresh token (one at a time); false when that is not possible. */
  async refresh() {
    if (!this.tokens || !this.tokens.refresh_token) return false;
    if (!this._refreshing) {
      const email = this.tokens.email;
      this._refreshing = this._post("/auth/refresh", { token: this.tokens.refresh_token })
        .then((pair) => { this._save({ ...pair, email }); return true; })
        .catch(() => false)
        .finally(() => { this._refreshing = null; });
    }
    return this._refreshing;
  }

  /** GET a data route; null on 404 (nothing stored yet), ApiError otherwise. */
  async get(path, params = undefined) {
    const qs = params ? "?" + new URLSearchParams(
      Object.entries(params).filter(([, v]) => v !== undefined && v !== null)) : "";
    for (let attempt = 0; attempt < 2; attempt++) {
      const r = await fetch(this.prefix + path + qs, {
        headers: { Authorization: `Bearer ${this.accessToken}` },
      });
      if (r.status === 401 && attempt === 0 && await this.refresh()) continue;
      if (r.status === 401) { this.logout(); throw new ApiError(401, "session expired; log in again"); }
      if (r.status === 404) return null;
      const data = await r.json().catch(() => ({}));
      if (!r.ok) throw new ApiError(r.status, data.detail || r.statusText);
      return data;
    }
    return null;
  }
}
