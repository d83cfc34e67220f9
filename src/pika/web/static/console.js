/* The DJ console (/dj/console): sign in, attach to the DJ's live session as a controller (or go
 * live here and type the tracks), watch the crowd — likes, tempo, thank-yous, poll votes — and run
 * it: polls, announcements, the end of the session.  One reconnecting socket (common.js). */
"use strict";

(function () {
  const P = window.Pika;
  const $ = P.$;
  const clientId = P.clientId();
  const HEADERS = { "X-Pika-Client": "pika-web" };
  const HEALTH_EVERY_MS = 15000;
  const HEALTH_WHILE_DOWN_MS = 4000;
  const FIND_EVERY_MS = 10000;
  const DISARM_MS = 4000;
  const RUNS_KEY = "pika.console.runs"; // the session this tab went live with (it takes it back on reload)
  const PRESETS = [
    { label: "What next?", question: "What should come next?", options: ["Faster", "Slower", "Same vibe"] },
    { label: "One more?", question: "One more song?", options: ["Yes!", "Time to wrap up"] },
    { label: "Style", question: "Which style next?", options: ["Salsa", "Bachata", "Kizomba"] },
    { label: "Sound", question: "How is the sound?", options: ["Too loud", "Just right", "Too quiet"] },
  ];

  const state = {
    token: P.djToken(),
    account: null, // {displayName, slug}
    view: "loading", // "signin" | "not-live" | "console" | "ended"
    sessionId: null,
    role: null, // "controller": attached to the agent's session; "dj": went live from this phone
    joined: false, // attached (or registered) on the current socket
    djName: null,
    track: null,
    listeners: 0,
    tempo: { slower: 0, perfect: 0, faster: 0, total: 0 },
    thanks: 0,
    poll: null, // {pollId, question, options, votes, totalVotes, endsAt, ended, winnerIndex}
    announcement: null, // {message, endsAt}
    likes: {}, // trackKey -> likes
    plays: [], // [{title, artist}], newest first
    resync: null, // while an attach's answers arrive: which state they brought
    dbDown: false,
  };
  let connection = "connecting";
  let findTimer = null;

  const socket = new P.LiveSocket({
    onOpen: join,
    onClose: (code) => {
      state.joined = false;
      state.resync = null;
      // 4001: the DJ's software took the session back; from now on this phone is its console.
      if (code === 4001 && state.role === "dj") {
        state.role = "controller";
        setRunsHere(null);
      }
      render();
    },
    onMessage: handle,
    onStatus: (s) => {
      connection = s;
      renderConnection();
    },
  });

  // -- account and session -----------------------------------------------------------------------

  function authorized() {
    return { headers: Object.assign({ Authorization: `Bearer ${state.token}` }, HEADERS) };
  }

  async function loadAccount() {
    const res = await P.api("/api/auth/me", authorized());
    if (res.status === 401) {
      signOut("That token no longer works — sign in again.");
      return;
    }
    if (!res.ok) {
      P.toast((res.body && res.body.error) || "Could not reach the server — retrying");
      setTimeout(loadAccount, FIND_EVERY_MS);
      return;
    }
    state.account = res.body.user;
    await findSession();
  }

  /** The account's live session: attach to it; none: offer to go live, and look again soon. */
  async function findSession() {
    clearTimeout(findTimer);
    const res = await P.api(`/api/dj/${encodeURIComponent(state.account.slug)}`);
    if (!res.ok) {
      P.toast((res.body && res.body.error) || "Could not reach the server — retrying");
      findTimer = setTimeout(findSession, FIND_EVERY_MS);
      return;
    }
    const live = (res.body.sessions || []).find((s) => !s.endedAt);
    if (live) {
      openSession(live.id, live.id === runsHere() ? "dj" : "controller");
      return;
    }
    state.view = "not-live";
    render();
    findTimer = setTimeout(() => state.view === "not-live" && findSession(), FIND_EVERY_MS);
  }

  function openSession(sessionId, role) {
    clearTimeout(findTimer);
    Object.assign(state, {
      view: "console",
      sessionId,
      role,
      joined: false,
      track: null,
      poll: null,
      announcement: null,
      thanks: 0,
      likes: {},
      plays: [],
      tempo: { slower: 0, perfect: 0, faster: 0, total: 0 },
    });
    render();
    join();
  }

  function runsHere() {
    try {
      return sessionStorage.getItem(RUNS_KEY);
    } catch (e) {
      return null;
    }
  }

  function setRunsHere(sessionId) {
    try {
      if (sessionId) sessionStorage.setItem(RUNS_KEY, sessionId);
      else sessionStorage.removeItem(RUNS_KEY);
    } catch (e) {
      /* private mode: a reload attaches as a console instead */
    }
  }

  /** On every (re)connection: attach as a controller, or register the session this phone runs. */
  function join() {
    if (state.view !== "console" || !socket.open) return;
    state.resync = { track: false, poll: false, announcement: false, tempo: false };
    const msg =
      state.role === "dj"
        ? { type: "REGISTER_SESSION", token: state.token, clientId, version: "pika-console" }
        : { type: "ATTACH_SESSION", sessionId: state.sessionId, token: state.token, clientId };
    if (state.role === "dj" && state.sessionId) msg.sessionId = state.sessionId;
    socket
      .request(msg)
      .then((reply) => {
        if (reply.type === "NACK") return refused(reply.error);
        finishResync();
        state.joined = true;
        render();
        loadPlays();
      })
      .catch(() => {
        /* dropped before the answer: the next connection joins again */
      });
  }

  function refused(error) {
    state.resync = null;
    if (error === "Invalid token") {
      signOut("That token no longer works — sign in again.");
    } else if (error === "Session not available") {
      P.toast("That session is over");
      findSession();
    } else {
      P.toast(error);
    }
  }

  /** After joining, whatever the answers did not bring is gone from the session. */
  function finishResync() {
    const seen = state.resync;
    state.resync = null;
    if (!seen) return;
    if (!seen.track) state.track = null;
    if (!seen.poll && state.poll && !state.poll.ended) state.poll = null;
    if (!seen.announcement) state.announcement = null;
    if (!seen.tempo) state.tempo = { slower: 0, perfect: 0, faster: 0, total: 0 };
  }

  /** Tonight's tracks with their likes so far (the owner's recap); live likes add to it. */
  async function loadPlays() {
    const sessionId = state.sessionId;
    const res = await P.api(`/api/sessions/${encodeURIComponent(sessionId)}/recap`, authorized());
    if (!res.ok || state.sessionId !== sessionId) return;
    const likes = {};
    const plays = [];
    for (const t of res.body.tracks || []) {
      likes[P.trackKey(t)] = t.likes;
      plays.unshift({ title: t.title, artist: t.artist });
    }
    state.likes = likes;
    state.plays = plays;
    render();
  }

  function signOut(message) {
    P.setDjToken(null);
    Object.assign(state, { token: null, account: null, view: "signin", sessionId: null, role: null, joined: false });
    const error = $("signin-error");
    error.textContent = message || "";
    error.hidden = !message;
    render();
  }

  async function signIn(event) {
    event.preventDefault();
    const email = $("email").value.trim();
    const password = $("password").value;
    if (!email || !password) return signinError("Enter your email and password.");
    const button = $("signin-submit");
    button.disabled = true;
    const res = await P.api("/api/auth/login", { json: { email, password }, headers: HEADERS });
    button.disabled = false;
    if (!res.ok || !res.body || !res.body.token) {
      return signinError((res.body && res.body.error) || `Could not sign in (HTTP ${res.status}).`);
    }
    $("password").value = "";
    useToken(res.body.token);
  }

  function signinError(message) {
    const error = $("signin-error");
    error.textContent = message;
    error.hidden = false;
  }

  function useToken(token) {
    P.setDjToken(token, $("remember").checked);
    state.token = token;
    $("signin-error").hidden = true;
    state.view = "loading";
    render();
    loadAccount();
  }

  // -- what the server tells ---------------------------------------------------------------------

  function handle(msg) {
    const seen = state.resync || {};
    if (msg.type === "SESSION_REGISTERED") {
      state.sessionId = msg.sessionId;
      state.djName = msg.djName;
      if (state.role === "dj") setRunsHere(msg.sessionId);
      render();
      return;
    }
    if (msg.sessionId !== state.sessionId) return;
    switch (msg.type) {
      case "NOW_PLAYING":
        seen.track = true;
        state.djName = msg.djName || state.djName;
        if (!state.track || P.trackKey(state.track) !== P.trackKey(msg.track)) addPlay(msg.track);
        state.track = Object.assign({}, msg.track);
        break;
      case "METADATA_UPDATED":
        if (state.track && P.trackKey(state.track) === P.trackKey(msg.track)) {
          state.track = Object.assign({}, state.track, msg.track);
        }
        break;
      case "TRACK_STOPPED":
        state.track = null;
        break;
      case "TEMPO_RESET":
        state.tempo = { slower: 0, perfect: 0, faster: 0, total: 0 };
        break;
      case "TEMPO_FEEDBACK":
        seen.tempo = true;
        state.tempo = { slower: msg.slower, perfect: msg.perfect, faster: msg.faster, total: msg.total };
        break;
      case "LISTENER_COUNT":
        state.listeners = msg.count;
        break;
      case "LIKE_RECEIVED": {
        const key = P.trackKey(msg.payload.track);
        state.likes[key] = (state.likes[key] || 0) + 1;
        break;
      }
      case "REACTION_RECEIVED":
        state.thanks += 1;
        P.toast("A dancer says thank you");
        break;
      case "POLL_STARTED":
        seen.poll = true;
        state.poll = P.pollFrom(msg);
        break;
      case "POLL_UPDATE":
        if (state.poll && state.poll.pollId === msg.pollId && !state.poll.ended) {
          state.poll.votes = msg.votes;
          state.poll.totalVotes = msg.totalVotes;
        }
        break;
      case "POLL_ENDED":
        if (state.poll && state.poll.pollId === msg.pollId) {
          Object.assign(state.poll, { ended: true, votes: msg.results, totalVotes: msg.totalVotes, winnerIndex: msg.winnerIndex });
        }
        break;
      case "ANNOUNCEMENT_RECEIVED":
        seen.announcement = true;
        state.announcement = { message: msg.message, endsAt: msg.endsAt || null };
        break;
      case "ANNOUNCEMENT_CANCELLED":
        state.announcement = null;
        break;
      case "SESSION_ENDED":
      case "SESSION_EXPIRED":
        state.view = "ended";
        state.joined = false;
        break;
      default:
        return;
    }
    render();
  }

  function addPlay(track) {
    state.plays.unshift({ title: track.title, artist: track.artist });
  }

  // -- what the DJ does --------------------------------------------------------------------------

  /** Send a DJ message; resolves true on ACK.  A refusal is shown as it comes (it names the field). */
  async function act(msg, button) {
    if (!state.joined) {
      P.toast("Not connected — try again in a moment");
      return false;
    }
    if (button) button.disabled = true;
    try {
      const reply = await socket.request(msg);
      if (reply.type === "NACK") {
        P.toast(reply.error);
        if (/^Database unavailable/.test(reply.error)) checkHealth();
        return false;
      }
      return true;
    } catch (e) {
      P.toast("Connection lost — not sent");
      return false;
    } finally {
      if (button) button.disabled = false;
    }
  }

  async function playTrack(event) {
    event.preventDefault();
    const artist = $("manual-artist").value.trim();
    const title = $("manual-title").value.trim();
    if (!artist || !title) return P.toast("Enter the artist and the title");
    const sent = await act({ type: "BROADCAST_TRACK", sessionId: state.sessionId, track: { title, artist } }, $("manual-play"));
    if (sent) {
      $("manual-artist").value = "";
      $("manual-title").value = "";
    }
  }

  function usePreset(preset) {
    $("poll-question-input").value = preset.question;
    $("poll-options-input").value = preset.options.join("\n");
  }

  async function startPoll(event) {
    event.preventDefault();
    const question = $("poll-question-input").value.trim();
    const options = $("poll-options-input")
      .value.split("\n")
      .map((o) => o.trim())
      .filter(Boolean);
    if (!question) return P.toast("Write a question, or tap a preset");
    if (options.length < 2 || options.length > 10) return P.toast("Give 2 to 10 options, one per line");
    const msg = { type: "START_POLL", sessionId: state.sessionId, question, options };
    const seconds = parseInt($("poll-duration").value, 10);
    if (seconds) msg.durationSeconds = seconds;
    if (await act(msg, $("poll-start"))) {
      $("poll-question-input").value = "";
      $("poll-options-input").value = "";
    }
  }

  async function sendAnnouncement(event) {
    event.preventDefault();
    const message = $("announce-message").value.trim();
    if (!message) return P.toast("Write the message first");
    const msg = {
      type: "SEND_ANNOUNCEMENT",
      sessionId: state.sessionId,
      message,
      durationSeconds: parseInt($("announce-duration").value, 10),
    };
    if (await act(msg, $("announce-send"))) $("announce-message").value = "";
  }

  let endArmed = null;
  function endSession() {
    const button = $("end-session");
    if (!endArmed) {
      button.textContent = "Tap again to end it";
      button.dataset.armed = "true";
      endArmed = setTimeout(disarmEnd, DISARM_MS);
      return;
    }
    disarmEnd();
    act({ type: "END_SESSION", sessionId: state.sessionId }, button);
  }

  function disarmEnd() {
    clearTimeout(endArmed);
    endArmed = null;
    const button = $("end-session");
    button.textContent = "End the session";
    button.dataset.armed = "false";
  }

  // -- /health: say so when the database is down --------------------------------------------------

  let healthTimer = null;
  async function checkHealth() {
    clearTimeout(healthTimer);
    const res = await P.api("/health");
    const down = res.status === 503;
    if (down !== state.dbDown) {
      state.dbDown = down;
      renderConnection();
    }
    healthTimer = setTimeout(checkHealth, down ? HEALTH_WHILE_DOWN_MS : HEALTH_EVERY_MS);
  }

  // -- rendering ---------------------------------------------------------------------------------

  function render() {
    P.show($("signin"), state.view === "signin");
    P.show($("not-live"), state.view === "not-live");
    P.show($("session-ended"), state.view === "ended");
    P.show($("console"), state.view === "console");
    P.show($("jumpbar"), state.view === "console");
    document.body.classList.toggle("has-actionbar", state.view === "console");
    if (state.account) $("account-name").textContent = state.account.displayName;
    renderConnection();
    if (state.view === "ended") renderEnded();
    if (state.view !== "console") return;
    renderNow();
    renderPoll();
    renderAnnouncement();
    renderPlays();
    renderShare();
  }

  function renderEnded() {
    $("recap-link").href = `/recap/${encodeURIComponent(state.sessionId)}`;
    const likes = Object.values(state.likes).reduce((sum, n) => sum + n, 0);
    $("ended-summary").textContent = `${P.plural(state.plays.length, "track")} · ${P.plural(likes, "like")} · ${P.plural(state.thanks, "thank-you")}`;
  }

  function renderConnection() {
    P.renderStatus(connection, state.view === "console" && !state.joined && connection === "live" ? { live: "Joining…" } : null);
    P.show($("signal-lost"), connection === "lost");
    P.show($("offline"), connection === "offline");
    P.show($("db-down"), state.dbDown);
    const listeners = $("listener-count");
    P.show(listeners, state.view === "console" && state.joined);
    listeners.textContent = P.plural(state.listeners, "listener");
  }

  function renderNow() {
    const track = state.track;
    $("dj-name").textContent = state.djName || (state.account && state.account.displayName) || "…";
    $("mode").textContent = state.role === "dj" ? "is live from this phone" : "is live · console attached";
    P.show($("track"), !!track);
    P.show($("nothing-playing"), !track);
    if (track) {
      $("track-title").textContent = track.title;
      $("track-artist").textContent = track.artist;
    }
    $("track-likes").textContent = track ? state.likes[P.trackKey(track)] || 0 : 0;
    $("thanks-count").textContent = state.thanks;
    $("listeners-big").textContent = state.listeners;
    const t = state.tempo;
    for (const pref of ["slower", "perfect", "faster"]) {
      $(`tempo-${pref}`).textContent = t[pref];
      $(`tempo-bar-${pref}`).style.width = `${t.total ? Math.round((100 * t[pref]) / t.total) : 0}%`;
    }
    const manual = $("manual");
    if (state.role === "dj" && !manual.dataset.touched) manual.open = true;
  }

  let pollDom = null; // {pollId, rows: [{bar, count}]}

  function renderPoll() {
    const poll = state.poll;
    P.show($("poll-live"), !!poll);
    P.show($("poll-form"), !poll);
    $("poll-label").textContent = !poll ? "Start a poll" : poll.ended ? "Poll closed" : "Poll running";
    if (!poll) {
      pollDom = null;
      return;
    }
    if (!pollDom || pollDom.pollId !== poll.pollId) buildPoll(poll);
    const total = poll.totalVotes || 0;
    poll.options.forEach((option, i) => {
      const { row, bar, count } = pollDom.rows[i];
      P.showShare(bar, count, poll.votes[i] || 0, total);
      row.dataset.winner = String(poll.ended && poll.winnerIndex === i);
    });
    const votes = P.plural(total, "vote");
    let status;
    if (poll.ended) {
      const winner = poll.winnerIndex >= 0 ? poll.options[poll.winnerIndex] : null;
      status = winner ? `“${winner}” wins · ${votes}` : `Closed · ${votes}`;
    } else {
      const left = socket.secondsLeft(poll.endsAt);
      status = votes + (left !== null ? ` · closes in ${P.duration(left)}` : " · open until you end it");
    }
    $("poll-status").textContent = status;
    P.show($("poll-actions"), !poll.ended);
    P.show($("poll-done"), poll.ended);
  }

  function buildPoll(poll) {
    $("poll-question").textContent = poll.question;
    pollDom = { pollId: poll.pollId, rows: [] };
    $("poll-options").replaceChildren(
      ...poll.options.map((option, i) => {
        const bar = P.el("span", { class: "bar" });
        const count = P.el("span", { class: "count", dataset: { testid: `poll-count-${i}` } });
        const row = P.el("div", { class: "poll-option poll-result" }, bar, P.el("span", {}, option), count);
        pollDom.rows.push({ row, bar, count });
        return P.el("li", {}, row);
      })
    );
  }

  function renderAnnouncement() {
    const a = state.announcement;
    const left = a ? socket.secondsLeft(a.endsAt) : null;
    if (a && left === 0) state.announcement = null; // expired: the server's cancel is on its way
    const visible = !!state.announcement;
    P.show($("announcement"), visible);
    P.show($("announcement-actions"), visible);
    if (!visible) return;
    $("announcement-message").textContent = a.message;
    $("announcement-countdown").textContent = left !== null ? `${P.duration(left)} left` : "until you take it down";
  }

  function renderPlays() {
    const current = state.track ? P.trackKey(state.track) : null;
    $("tracks").replaceChildren(
      ...state.plays.map((play, i) => {
        const key = P.trackKey(play);
        return P.el(
          "li",
          { dataset: { testid: "played-track", current: String(i === 0 && key === current) } },
          P.el(
            "div",
            { class: "grow" },
            P.el("div", { class: "line1" }, play.title),
            P.el("div", { class: "line2" }, play.artist)
          ),
          P.el("div", { class: "side likes-count", dataset: { testid: "played-likes" } }, `♥ ${state.likes[key] || 0}`)
        );
      })
    );
    P.show($("tracks-empty"), state.plays.length === 0);
  }

  function renderShare() {
    const path = `/live/${encodeURIComponent(state.sessionId || "")}`;
    const qr = $("qr");
    if (state.sessionId && qr.dataset.session !== state.sessionId) {
      qr.dataset.session = state.sessionId;
      qr.src = `${path}/qr.svg`;
    }
    const link = $("share-link");
    link.href = path;
    link.textContent = location.host + path;
  }

  // -- start -------------------------------------------------------------------------------------

  $("signin-form").addEventListener("submit", signIn);
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!/^pk_dj_[0-9a-f]{32}$/.test(token)) return signinError("A token looks like pk_dj_ and 32 letters and digits.");
    $("token-input").value = "";
    useToken(token);
  });
  $("go-live").addEventListener("click", () => openSession(null, "dj"));
  $("sign-out").addEventListener("click", () => signOut());
  $("start-over").addEventListener("click", () => {
    state.sessionId = null;
    findSession();
  });
  $("manual").addEventListener("toggle", (event) => (event.target.dataset.touched = "true"));
  $("track-form").addEventListener("submit", playTrack);
  $("poll-presets").replaceChildren(
    ...PRESETS.map((preset, i) =>
      P.el("button", { type: "button", class: "chip-button", dataset: { testid: `preset-${i}` }, on: { click: () => usePreset(preset) } }, preset.label)
    )
  );
  $("poll-form").addEventListener("submit", startPoll);
  $("poll-end").addEventListener("click", () => act({ type: "END_POLL", pollId: state.poll.pollId }, $("poll-end")));
  $("poll-cancel").addEventListener("click", () =>
    act({ type: "CANCEL_POLL", sessionId: state.sessionId, pollId: state.poll.pollId }, $("poll-cancel"))
  );
  $("poll-new").addEventListener("click", () => {
    state.poll = null;
    render();
  });
  $("announce-form").addEventListener("submit", sendAnnouncement);
  $("announcement-cancel").addEventListener("click", () =>
    act({ type: "CANCEL_ANNOUNCEMENT", sessionId: state.sessionId }, $("announcement-cancel"))
  );
  $("end-session").addEventListener("click", endSession);
  for (const button of document.querySelectorAll("[data-jump]")) {
    button.addEventListener("click", () => $(button.dataset.jump).scrollIntoView({ block: "start" }));
  }
  setInterval(() => {
    if (state.announcement) renderAnnouncement();
    if (state.poll && state.poll.endsAt && !state.poll.ended) renderPoll();
  }, 1000);
  checkHealth();
  if (state.token) loadAccount();
  else state.view = "signin";
  render();
  socket.start();
})();
