/* Who is live (/ and /live): the live sessions, kept fresh over the socket (SESSION_STARTED/ENDED
 * arrive at once; GET_SESSIONS every few seconds for tracks and listeners, or the HTTP API when
 * the socket is down), and the recent sessions. */
"use strict";

(function () {
  const P = window.Pika;
  const $ = P.$;
  const REFRESH_MS = 4000;
  const RECENT_MS = 60000;

  const socket = new P.LiveSocket({
    onOpen: () => socket.send({ type: "SUBSCRIBE", clientId: P.clientId() }),
    onMessage: (msg) => {
      if (msg.type === "SESSIONS_LIST") renderLive(msg.sessions || []);
      if (msg.type === "SESSION_STARTED" || msg.type === "SESSION_ENDED" || msg.type === "SESSION_EXPIRED") {
        socket.send({ type: "GET_SESSIONS" });
        if (msg.type !== "SESSION_STARTED") loadRecent();
      }
    },
    onStatus: (state) => P.renderStatus(state, { live: "Updating live" }),
  });

  async function refresh() {
    if (socket.send({ type: "GET_SESSIONS" })) return;
    const res = await P.api("/api/sessions/active");
    if (res.ok && res.body) renderLive(res.body.sessions || []);
  }

  let shown = null;
  function renderLive(sessions) {
    const fingerprint = JSON.stringify(sessions);
    if (fingerprint === shown) return;
    shown = fingerprint;
    const box = $("live-sessions");
    box.replaceChildren(...sessions.map(card));
    P.show($("no-live"), sessions.length === 0);
    $("live-summary").textContent = sessions.length
      ? `${P.plural(sessions.length, "DJ")} live now. Tap one to join.`
      : "Nobody is live right now.";
  }

  function card(s) {
    const track = s.currentTrack;
    return P.el(
      "a",
      { class: "session-card", href: `/live/${encodeURIComponent(s.sessionId)}`, dataset: { testid: "session-card", sessionId: s.sessionId } },
      P.el("p", { class: "dj" }, P.el("span", { class: "chip chip-live" }, "LIVE"), P.el("span", { dataset: { testid: "session-dj" } }, s.djName)),
      track
        ? P.el(
            "p",
            { class: "track", dataset: { testid: "session-track" } },
            P.el("strong", {}, track.title),
            P.el("span", { class: "track-artist" }, ` — ${track.artist}`)
          )
        : P.el("p", { class: "track track-artist", dataset: { testid: "session-track" } }, "Between tracks"),
      P.el(
        "p",
        { class: "foot" },
        P.el("span", { dataset: { testid: "session-listeners" } }, P.plural(s.listenerCount || 0, "listener")),
        P.el("span", { class: "join" }, "Join →")
      )
    );
  }

  async function loadRecent() {
    const res = await P.api("/api/sessions/recent");
    if (!res.ok || !Array.isArray(res.body)) return;
    $("recent-sessions").replaceChildren(
      ...res.body.map((s) =>
        P.el(
          "li",
          { dataset: { testid: "recent-session" } },
          P.el(
            "div",
            { class: "grow" },
            P.el("div", { class: "line1" }, P.el("a", { href: `/recap/${encodeURIComponent(s.id)}` }, s.djName)),
            P.el("div", { class: "line2" }, `${P.date(s.startedAt)} · ${P.clock(s.startedAt)}–${P.clock(s.endedAt)}`)
          ),
          P.el("a", { class: "side", href: `/recap/${encodeURIComponent(s.id)}` }, "Set list")
        )
      )
    );
    P.show($("no-recent"), res.body.length === 0);
  }

  refresh();
  loadRecent();
  setInterval(refresh, REFRESH_MS);
  setInterval(loadRecent, RECENT_MS);
  socket.start();
})();
