/* Pika! shared helpers: this browser's clientId, DOM building, JSON fetches, and a WebSocket
 * that reconnects by itself (backoff with jitter, never sooner than the server's Retry-After:
 * the rule of pika/backoff.py), pings every 10 s and says when the signal is lost. */
"use strict";

(function () {
  const PING_EVERY_MS = 10000;
  const LOST_AFTER_MS = 30000;
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 8000;
  const JITTER = 0.5; // a wait is stretched by up to half of itself, so a venue does not return in step
  const ASK_WAIT_MS = 5000; // how long to wait for GET /ws's answer after a refused upgrade

  function store(key, fallback) {
    try {
      const raw = localStorage.getItem(key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch (e) {
      return fallback;
    }
  }

  function save(key, value) {
    try {
      localStorage.setItem(key, JSON.stringify(value));
    } catch (e) {
      /* private mode or full: the page still works, it just forgets */
    }
  }

  function randomHex(bytes) {
    const buf = new Uint8Array(bytes);
    crypto.getRandomValues(buf);
    return Array.from(buf, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** This browser's identity, made once and kept: `client_` + 32 hex digits. */
  function clientId() {
    let id = store("pika.clientId", null);
    if (typeof id !== "string" || !/^client_[0-9a-f]{16,}$/.test(id)) {
      id = "client_" + randomHex(16);
      save("pika.clientId", id);
    }
    return id;
  }

  /** The DJ's API token for the console: this tab only, or this phone when `remember`ed. */
  const DJ_TOKEN_KEY = "pika.djToken";

  function djToken() {
    try {
      return sessionStorage.getItem(DJ_TOKEN_KEY) || localStorage.getItem(DJ_TOKEN_KEY);
    } catch (e) {
      return null;
    }
  }

  function setDjToken(token, remember) {
    try {
      sessionStorage.removeItem(DJ_TOKEN_KEY);
      localStorage.removeItem(DJ_TOKEN_KEY);
      if (token) (remember ? localStorage : sessionStorage).setItem(DJ_TOKEN_KEY, token);
    } catch (e) {
      /* private mode: the console asks again next time */
    }
  }

  /** el("p", {class: "x", dataset: {testid: "y"}}, "text", child) — text is always text, never HTML. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === "dataset") Object.assign(node.dataset, value);
      else if (name === "on") for (const [ev, fn] of Object.entries(value)) node.addEventListener(ev, fn);
      else if (name === "text") node.textContent = value;
      else node.setAttribute(name, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function $(testid) {
    return document.querySelector(`[data-testid="${testid}"]`);
  }

  function show(node, visible) {
    if (node) node.hidden = !visible;
  }

  /** GET/POST JSON; resolves {ok, status, body}; never throws for HTTP errors. */
  async function api(path, options) {
    const opts = Object.assign({ headers: {} }, options || {});
    opts.headers = Object.assign({ Accept: "application/json" }, opts.headers);
    if (opts.json !== undefined) {
      opts.method = opts.method || "POST";
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(opts.json);
      delete opts.json;
    }
    try {
      const response = await fetch(path, opts);
      let body = null;
      try {
        body = await response.json();
      } catch (e) {
        body = null;
      }
      return { ok: response.ok, status: response.status, body };
    } catch (e) {
      return { ok: false, status: 0, body: { error: "No connection — check your network and try again" } };
    }
  }

  /** Same track: artist and title trimmed, inner spaces collapsed, case folded (PROTOCOL.md §3). */
  function trackKey(track) {
    const fold = (s) => String(s || "").trim().replace(/\s+/g, " ").toLowerCase();
    return fold(track.artist) + "\u0000" + fold(track.title);
  }

  function clock(iso) {
    const d = new Date(iso);
    return isNaN(d) ? "" : d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function date(iso) {
    const d = new Date(iso);
    return isNaN(d)
      ? ""
      : d.toLocaleDateString([], { weekday: "short", day: "numeric", month: "short", year: "numeric" });
  }

  /** A countdown: "45 s", "4:05". */
  function duration(seconds) {
    if (seconds < 60) return `${seconds} s`;
    return `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
  }

  /** A poll as the pages keep it, from its POLL_STARTED. */
  function pollFrom(msg) {
    const options = msg.options || [];
    return {
      pollId: msg.pollId,
      question: msg.question,
      options,
      votes: msg.votes || options.map(() => 0),
      totalVotes: msg.totalVotes || 0,
      endsAt: msg.endsAt || null,
      ended: false,
      winnerIndex: -1,
    };
  }

  /** One option's share of the votes, as a bar's width and a "3 · 60%" count. */
  function showShare(bar, count, n, total) {
    const pct = total ? Math.round((100 * n) / total) : 0;
    bar.style.width = `${pct}%`;
    count.textContent = `${n} · ${pct}%`;
  }

  function plural(n, one, many) {
    return `${n} ${n === 1 ? one : many || one + "s"}`;
  }

  let toastTimer = null;
  function toast(text) {
    const node = $("toast");
    if (!node) return;
    node.textContent = text;
    node.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (node.hidden = true), 3500);
  }

  /** Copy text; falls back to selecting it in `input` when the Clipboard API is not allowed. */
  async function copy(text, input) {
    try {
      await navigator.clipboard.writeText(text);
      return true;
    } catch (e) {
      if (!input) return false;
      input.focus();
      input.select();
      try {
        return document.execCommand("copy");
      } catch (e2) {
        return false;
      }
    }
  }

  /**
   * Where to open the live socket: the URL the server gives (GET /api/live: its live listener, or
   * the public URL a proxy routes), else this page's own /ws, which every server also serves.
   */
  async function liveUrl(sameOriginOnly) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const sameOrigin = `${scheme}//${location.host}/ws`;
    if (sameOriginOnly) return sameOrigin;
    try {
      const response = await fetch("/api/live", { cache: "no-store" });
      const body = response.ok ? await response.json() : null;
      if (body && typeof body.url === "string") return body.url;
    } catch (e) {
      /* offline or an old server: the page's own origin */
    }
    return sameOrigin;
  }

  /**
   * A WebSocket to the live URL that comes back by itself.  When an attempt fails before it
   * opens, the next one tries the other URL (the live one, or the page's own /ws).
   *   onOpen()        — connected (subscribe here)
   *   onClose(code)   — the socket closed (the WebSocket close code, when the server sent one)
   *   onMessage(msg)  — every frame, parsed
   *   onStatus(state) — "connecting" | "live" | "reconnecting" | "offline" | "lost"
   * `request(msg)` adds a messageId and resolves with its ACK/NACK (rejects if the socket drops).
   */
  class LiveSocket {
    constructor(handlers) {
      this.handlers = handlers;
      this.ws = null;
      this.attempt = 0;
      this.retryTimer = null;
      this.asking = false; // a GET /ws is asking how long to wait
      this.pending = new Map();
      this.resolving = false;
      this.sameOriginOnly = false;
      this.seq = 0;
      this.lastPong = Date.now();
      this.openedAt = 0;
      this.everConnected = false;
      this.offsetMs = 0; // server clock minus ours
      this.pingSentAt = 0;
      this.state = null;
      window.addEventListener("offline", () => this.dropForOffline());
      window.addEventListener("online", () => this.connectNow());
      document.addEventListener("visibilitychange", () => {
        if (!document.hidden) this.connectNow();
      });
      setInterval(() => this.ping(), PING_EVERY_MS);
      setInterval(() => this.watch(), 1000);
    }

    get open() {
      return this.ws !== null && this.ws.readyState === WebSocket.OPEN;
    }

    /** The server's clock, from PONG timestamps (announcement and poll countdowns use it). */
    now() {
      return Date.now() + this.offsetMs;
    }

    /** Whole seconds until `endsAt` (ISO) by the server's clock; null when there is no end. */
    secondsLeft(endsAt) {
      if (!endsAt) return null;
      const ms = Date.parse(endsAt) - this.now();
      return isNaN(ms) ? null : Math.max(0, Math.ceil(ms / 1000));
    }

    start() {
      this.connect();
      this.watch();
    }

    connect() {
      clearTimeout(this.retryTimer);
      this.retryTimer = null;
      if (this.ws !== null || this.resolving) return;
      if (navigator.onLine === false) {
        this.retryLater();
        return;
      }
      this.resolving = true;
      liveUrl(this.sameOriginOnly).then((url) => {
        this.resolving = false;
        if (this.ws === null) this.openSocket(url);
      });
    }

    openSocket(url) {
      let ws;
      let opened = false;
      try {
        ws = new WebSocket(url);
      } catch (e) {
        this.sameOriginOnly = !this.sameOriginOnly;
        this.retryLater();
        return;
      }
      this.ws = ws;
      ws.onopen = () => {
        opened = true;
        if (this.ws !== ws) return;
        this.attempt = 0;
        this.everConnected = true;
        this.openedAt = Date.now();
        this.handlers.onOpen && this.handlers.onOpen(); // subscribe first: its answers precede the PONG
        this.ping();
        this.watch();
      };
      ws.onmessage = (event) => {
        if (this.ws !== ws) return;
        let msg;
        try {
          msg = JSON.parse(event.data);
        } catch (e) {
          return;
        }
        if (msg.type === "PONG") this.pong(msg);
        if ((msg.type === "ACK" || msg.type === "NACK") && this.pending.has(msg.messageId)) {
          const resolve = this.pending.get(msg.messageId).resolve;
          this.pending.delete(msg.messageId);
          resolve(msg);
        }
        this.handlers.onMessage && this.handlers.onMessage(msg);
      };
      ws.onclose = (event) => {
        if (this.ws !== ws) return;
        this.ws = null;
        if (!opened) this.sameOriginOnly = !this.sameOriginOnly; // try the other URL next
        this.failPending();
        this.handlers.onClose && this.handlers.onClose(event.code);
        if (opened) this.retryLater();
        else this.retryWhenAllowed();
        this.watch();
      };
      ws.onerror = () => {
        /* onclose follows */
      };
      this.watch();
    }

    connectNow() {
      this.attempt = 0;
      if (this.ws === null) this.connect();
    }

    /* The upgrade failed: a browser never sees why, so ask GET /ws, which answers as the upgrade
     * would have (429/503 with Retry-After when this address must wait), and wait that long. */
    retryWhenAllowed() {
      if (this.retryTimer !== null || this.asking) return;
      this.asking = true;
      const aborter = new AbortController();
      const giveUp = setTimeout(() => aborter.abort(), ASK_WAIT_MS);
      fetch("/ws", { cache: "no-store", signal: aborter.signal })
        .then((response) => {
          const seconds = Number(response.headers.get("Retry-After"));
          return response.status >= 400 && seconds > 0 ? seconds * 1000 : 0;
        })
        .catch(() => 0)
        .then((retryAfterMs) => {
          clearTimeout(giveUp);
          this.asking = false;
          if (this.ws === null) this.retryLater(retryAfterMs);
        });
    }

    retryLater(retryAfterMs = 0) {
      if (this.retryTimer !== null) return;
      const floor = Math.max(retryAfterMs, Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt));
      this.attempt += 1;
      const delay = floor * (1 + JITTER * Math.random());
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        this.connect();
      }, delay);
    }

    dropForOffline() {
      // Some browsers keep a socket "open" while the device is offline: close it, queue instead.
      if (this.ws !== null) {
        const ws = this.ws;
        this.ws = null;
        this.failPending();
        try {
          ws.close(1000, "offline");
        } catch (e) {
          /* already closing */
        }
        this.handlers.onClose && this.handlers.onClose();
      }
      this.watch();
    }

    failPending() {
      for (const { reject } of this.pending.values()) reject(new Error("disconnected"));
      this.pending.clear();
    }

    send(msg) {
      if (!this.open) return false;
      this.ws.send(JSON.stringify(msg));
      return true;
    }

    request(msg) {
      const messageId = msg.messageId || `w${Date.now().toString(36)}${(this.seq++).toString(36)}`;
      return new Promise((resolve, reject) => {
        if (!this.open) {
          reject(new Error("disconnected"));
          return;
        }
        this.pending.set(messageId, { resolve, reject });
        this.ws.send(JSON.stringify(Object.assign({}, msg, { messageId })));
      });
    }

    ping() {
      if (!this.open) return;
      this.pingSentAt = Date.now();
      this.send({ type: "PING" });
    }

    pong(msg) {
      const now = Date.now();
      this.lastPong = now;
      const server = Date.parse(msg.timestamp);
      if (!isNaN(server) && this.pingSentAt && now - this.pingSentAt < 5000) {
        this.offsetMs = server - (this.pingSentAt + now) / 2;
      }
      this.watch();
    }

    watch() {
      const silent = Date.now() - this.lastPong;
      if (this.open && Date.now() - Math.max(this.lastPong, this.openedAt) > LOST_AFTER_MS) {
        // Open but mute for 30 s: the path is dead even if the socket does not know it yet.
        const ws = this.ws;
        this.ws = null;
        this.failPending();
        try {
          ws.close();
        } catch (e) {
          /* ignore */
        }
        this.handlers.onClose && this.handlers.onClose();
        this.retryLater();
      }
      let state;
      if (silent > LOST_AFTER_MS) state = "lost";
      else if (navigator.onLine === false) state = "offline";
      else if (this.open) state = "live";
      else state = this.everConnected ? "reconnecting" : "connecting";
      if (state !== this.state) {
        this.state = state;
        this.handlers.onStatus && this.handlers.onStatus(state);
      }
    }
  }

  // -- the service worker and Web Push ------------------------------------------------------------

  /** Register /sw.js (offline shell, pushed announcements); null where the browser has none. */
  function registerWorker() {
    if (!("serviceWorker" in navigator)) return null;
    return navigator.serviceWorker.register("/sw.js").catch(() => null);
  }

  /** The push subscription of this browser, after a permission the dancer granted by a tap. */
  async function pushSubscribe(publicKey) {
    const permission = await Notification.requestPermission();
    if (permission !== "granted") throw new Error("Notifications are blocked for this site");
    const registration = await navigator.serviceWorker.ready;
    const raw = atob(publicKey.replace(/-/g, "+").replace(/_/g, "/"));
    const key = Uint8Array.from(raw, (c) => c.charCodeAt(0));
    const old = await registration.pushManager.getSubscription();
    if (old) await old.unsubscribe(); // it may carry another server key
    return registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: key });
  }

  async function pushSubscription() {
    if (!("serviceWorker" in navigator)) return null;
    const registration = await navigator.serviceWorker.ready;
    return registration.pushManager.getSubscription();
  }

  const STATUS_TEXT = {
    connecting: "Connecting…",
    live: "Live",
    reconnecting: "Reconnecting…",
    offline: "Offline",
    lost: "Signal lost",
  };

  /** Show a LiveSocket state in the top bar's status pill. */
  function renderStatus(state, labels) {
    const pill = $("connection-status");
    if (pill) {
      pill.dataset.state = state;
      pill.textContent = (labels && labels[state]) || STATUS_TEXT[state] || state;
    }
  }

  window.Pika = {
    api,
    clientId,
    clock,
    copy,
    date,
    djToken,
    duration,
    el,
    LiveSocket,
    plural,
    pollFrom,
    pushSubscribe,
    pushSubscription,
    registerWorker,
    renderStatus,
    save,
    setDjToken,
    show,
    showShare,
    store,
    toast,
    trackKey,
    $,
  };
})();
