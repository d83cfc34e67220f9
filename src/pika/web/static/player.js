/* The live player (/live/{sessionId}): now playing, history, likes (queued while offline), tempo
 * votes, the active poll, the DJ's announcement and a thank-you — over one reconnecting socket.
 * Only SESSION_ENDED for this session shows "ended": a DJ's dropped connection changes nothing. */
"use strict";

(function () {
  const P = window.Pika;
  const $ = P.$;
  const sessionId = decodeURIComponent(location.pathname.split("/")[2] || "");
  const clientId = P.clientId();
  const LIKED_KEY = `pika.liked.${sessionId}`;
  const TEMPO_KEY = `pika.tempo.${sessionId}`;
  const OUTBOX_KEY = "pika.outbox";
  const LAST_KEY = `pika.last.${sessionId}`;
  const PUSH_KEY = `pika.push.${sessionId}`; // the endpoint this phone subscribed for this session
  const FLUSH_RETRY_MS = 20000;

  const state = {
    djName: null,
    track: null,
    ended: false,
    listeners: null,
    poll: null, // {pollId, question, options, votes, totalVotes, endsAt, mine, ended, winnerIndex}
    announcement: null, // {message, djName, endsAt}
    liked: P.store(LIKED_KEY, {}), // trackKey -> {title, artist}
    tempo: P.store(TEMPO_KEY, null), // {key, pref}
    subscribed: false,
    resync: null, // while a SUBSCRIBE's answers arrive: which state they brought
    history: [],
    flushing: false,
    thanksBusy: false,
  };

  let connection = "connecting"; // the socket's state, as LiveSocket reports it
  let unreachable = false; // the server never answered since this page opened (e.g. opened offline)

  const socket = new P.LiveSocket({
    onOpen: subscribe,
    onClose: () => {
      if (!socket.everConnected) unreachable = true;
      state.subscribed = false;
      state.resync = null;
      render();
    },
    onMessage: handle,
    onStatus: (s) => {
      connection = s;
      renderConnection();
    },
  });

  function renderConnection() {
    // Opened without reaching the server (the offline shell): lost from the start, not "connecting".
    const lostAtStart = unreachable && !socket.everConnected && connection !== "offline";
    const shown = lostAtStart ? "lost" : connection;
    P.renderStatus(shown, state.ended ? { live: "Ended" } : null);
    $("connection-status").dataset.ended = String(state.ended);
    P.show($("signal-lost"), shown === "lost");
    P.show($("offline"), shown === "offline");
  }

  // -- subscription ------------------------------------------------------------------------------

  function subscribe() {
    state.subscribed = false;
    state.resync = { track: false, poll: false, announcement: false, ended: false };
    socket
      .request({ type: "SUBSCRIBE", sessionId, clientId })
      .then((reply) => {
        if (reply.type === "NACK") {
          P.toast(reply.error);
          return;
        }
        finishResync();
        state.subscribed = true;
        render();
        flush();
      })
      .catch(() => {
        /* dropped before the ACK: the next connection subscribes again */
      });
  }

  /** After a SUBSCRIBE, whatever its answers did not bring is gone from the session. */
  function finishResync() {
    const seen = state.resync;
    state.resync = null;
    if (!seen) return;
    if (!seen.ended) state.ended = false;
    if (!seen.track) setTrack(null);
    if (!seen.poll && state.poll && !state.poll.ended) state.poll = null;
    if (!seen.announcement) state.announcement = null;
  }

  function ours(msg) {
    return msg.sessionId === sessionId;
  }

  function handle(msg) {
    const seen = state.resync || {};
    switch (msg.type) {
      case "SESSIONS_LIST": {
        const mine = (msg.sessions || []).find((s) => s.sessionId === sessionId);
        if (mine) state.djName = mine.djName;
        break;
      }
      case "SESSION_STARTED":
        if (ours(msg)) {
          state.ended = false;
          state.djName = msg.djName;
        }
        break;
      case "SESSION_ENDED":
      case "SESSION_EXPIRED":
        if (ours(msg)) {
          seen.ended = true;
          state.ended = true;
          state.announcement = null;
          setTrack(null);
          if (state.poll && !state.poll.ended) state.poll = null;
        }
        break;
      case "NOW_PLAYING":
        if (ours(msg)) {
          seen.track = true;
          state.ended = false;
          if (msg.djName) state.djName = msg.djName;
          setTrack(msg.track);
        }
        break;
      case "METADATA_UPDATED":
        if (ours(msg) && state.track && P.trackKey(state.track) === P.trackKey(msg.track)) {
          state.track = Object.assign({}, state.track, msg.track);
        }
        break;
      case "TRACK_STOPPED":
        if (ours(msg)) setTrack(null);
        break;
      case "TEMPO_RESET":
        if (ours(msg)) setTempo(null);
        break;
      case "LISTENER_COUNT":
        if (ours(msg)) state.listeners = msg.count;
        break;
      case "POLL_STARTED":
        if (ours(msg)) {
          seen.poll = true;
          startPoll(msg);
        }
        break;
      case "POLL_UPDATE":
        if (state.poll && state.poll.pollId === msg.pollId && !state.poll.ended) {
          state.poll.votes = msg.votes;
          state.poll.totalVotes = msg.totalVotes;
        }
        break;
      case "VOTE_CONFIRMED":
        if (state.poll && state.poll.pollId === msg.pollId) {
          state.poll.mine = msg.optionIndex;
          P.save(`pika.vote.${msg.pollId}`, msg.optionIndex);
          if (!state.poll.ended) {
            state.poll.votes = msg.votes;
            state.poll.totalVotes = msg.totalVotes;
          }
        }
        break;
      case "VOTE_REJECTED":
        if (state.poll && state.poll.pollId === msg.pollId) {
          if (Array.isArray(msg.votes) && !state.poll.ended) {
            state.poll.votes = msg.votes;
            state.poll.totalVotes = msg.totalVotes;
          }
          if (msg.reason === "Already voted" && state.poll.mine === null) {
            const stored = P.store(`pika.vote.${msg.pollId}`, null);
            state.poll.mine = typeof stored === "number" ? stored : -1;
          }
          if (msg.reason === "Poll has ended") state.poll.ended = true;
          P.toast(msg.reason);
        }
        break;
      case "POLL_ENDED":
        if (ours(msg) && state.poll && state.poll.pollId === msg.pollId) {
          Object.assign(state.poll, {
            ended: true,
            votes: msg.results,
            totalVotes: msg.totalVotes,
            winnerIndex: msg.winnerIndex,
          });
        }
        break;
      case "ANNOUNCEMENT_RECEIVED":
        if (ours(msg)) {
          seen.announcement = true;
          state.announcement = { message: msg.message, djName: msg.djName, endsAt: msg.endsAt || null };
        }
        break;
      case "ANNOUNCEMENT_CANCELLED":
        if (ours(msg)) state.announcement = null;
        break;
      default:
        return;
    }
    render();
  }

  // -- track, history ----------------------------------------------------------------------------

  function setTrack(track) {
    const before = state.track ? P.trackKey(state.track) : null;
    state.track = track ? Object.assign({}, track) : null;
    const after = track ? P.trackKey(track) : null;
    if (state.tempo && state.tempo.key !== after) setTempo(null);
    if (before !== after) loadHistorySoon();
  }

  let historyTimer = null;
  function loadHistorySoon() {
    clearTimeout(historyTimer);
    historyTimer = setTimeout(loadHistory, 400);
  }

  async function loadHistory() {
    const res = await P.api(`/api/sessions/${encodeURIComponent(sessionId)}/history`);
    if (res.ok && Array.isArray(res.body)) {
      state.history = res.body;
      saveLast();
      renderHistory();
    }
  }

  // -- likes: sent at once when subscribed, else queued in localStorage ----------------------------

  function wire(track) {
    return { title: track.title, artist: track.artist };
  }

  function saveLiked() {
    P.save(LIKED_KEY, state.liked);
  }

  function outbox() {
    const items = P.store(OUTBOX_KEY, []);
    return Array.isArray(items) ? items : [];
  }

  function queuedLike(key) {
    return outbox().some((i) => i.sessionId === sessionId && i.key === key && i.op === "like");
  }

  /** Queue `op` for this track; an opposite op still waiting (not in flight) cancels out. */
  function enqueue(op, track) {
    const key = P.trackKey(track);
    let items = outbox();
    const waiting = items.find((i) => i.sessionId === sessionId && i.key === key && !i.flushId);
    if (waiting) {
      items = items.filter((i) => i !== waiting);
      if (waiting.op !== op) {
        P.save(OUTBOX_KEY, items);
        return;
      }
    }
    items.push({ op, sessionId, key, track: wire(track) });
    P.save(OUTBOX_KEY, items);
  }

  function toggleLike(track) {
    if (!track) return;
    const key = P.trackKey(track);
    if (state.liked[key]) {
      delete state.liked[key];
      saveLiked();
      render();
      unlike(track);
    } else {
      state.liked[key] = wire(track);
      saveLiked();
      render();
      like(track);
    }
  }

  async function like(track) {
    if (!state.subscribed) {
      enqueue("like", track);
      P.toast("Liked — it will reach the DJ when you are back online");
      render();
      return;
    }
    let reply;
    try {
      reply = await socket.request({ type: "SEND_LIKE", sessionId, clientId, payload: { track: wire(track) } });
    } catch (e) {
      enqueue("like", track); // the bulk send skips it if it did arrive
      render();
      return;
    }
    if (reply.type !== "NACK" || /already liked/i.test(reply.error)) return;
    if (/rate limit/i.test(reply.error)) {
      enqueue("like", track);
      P.toast("Easy there! Your like is saved and sent in a moment");
      setTimeout(flush, FLUSH_RETRY_MS);
    } else {
      delete state.liked[P.trackKey(track)];
      saveLiked();
      P.toast(reply.error);
    }
    render();
  }

  async function unlike(track) {
    const key = P.trackKey(track);
    const items = outbox();
    const waiting = items.find((i) => i.sessionId === sessionId && i.key === key && i.op === "like" && !i.flushId);
    if (waiting) {
      P.save(OUTBOX_KEY, items.filter((i) => i !== waiting)); // never sent: nothing to undo
      render();
      return;
    }
    if (!state.subscribed) {
      enqueue("unlike", track);
      return;
    }
    try {
      await socket.request({ type: "REMOVE_LIKE", sessionId, clientId, payload: { track: wire(track) } });
    } catch (e) {
      enqueue("unlike", track);
    }
  }

  /** Send what was queued for this session: the likes as one SEND_BULK_LIKE, then any undos. */
  async function flush() {
    if (!state.subscribed || state.flushing) return;
    state.flushing = true;
    try {
      await flushLikes();
      await flushUnlikes();
    } finally {
      state.flushing = false;
      render();
    }
  }

  async function flushLikes() {
    let items = outbox();
    const mine = items.filter((i) => i.sessionId === sessionId && i.op === "like");
    if (mine.length === 0) return;
    // A batch that was sent but not answered goes again with the same messageId (the server
    // applies it once); otherwise every waiting like forms a new batch.
    let flushId = (mine.find((i) => i.flushId) || {}).flushId;
    if (!flushId) {
      flushId = `bulk_${clientId.slice(-8)}_${Date.now().toString(36)}`;
      mine.slice(0, 100).forEach((i) => (i.flushId = flushId));
      P.save(OUTBOX_KEY, items);
    }
    const batch = mine.filter((i) => i.flushId === flushId);
    let reply;
    try {
      reply = await socket.request({
        type: "SEND_BULK_LIKE",
        messageId: flushId,
        sessionId,
        clientId,
        payload: { tracks: batch.map((i) => i.track) },
      });
    } catch (e) {
      return; // dropped: the next connection sends the same batch again
    }
    if (reply.type === "NACK" && /rate limit/i.test(reply.error)) {
      setTimeout(flush, FLUSH_RETRY_MS);
      return;
    }
    if (reply.type === "NACK") P.toast(`Your saved likes could not be sent: ${reply.error}`);
    items = outbox().filter((i) => i.flushId !== flushId);
    P.save(OUTBOX_KEY, items);
    if (items.some((i) => i.sessionId === sessionId && i.op === "like")) await flushLikes();
  }

  async function flushUnlikes() {
    for (const item of outbox().filter((i) => i.sessionId === sessionId && i.op === "unlike")) {
      try {
        await socket.request({ type: "REMOVE_LIKE", sessionId, clientId, payload: { track: item.track } });
      } catch (e) {
        return;
      }
      P.save(OUTBOX_KEY, outbox().filter((i) => !(i.op === "unlike" && i.sessionId === sessionId && i.key === item.key)));
    }
  }

  // -- tempo, thanks, poll -----------------------------------------------------------------------

  function setTempo(tempo) {
    state.tempo = tempo;
    P.save(TEMPO_KEY, tempo);
  }

  async function tempoTap(pref) {
    if (!state.track) {
      P.toast("Nothing is playing right now");
      return;
    }
    if (!state.subscribed) {
      P.toast("Not connected — try again in a moment");
      return;
    }
    const key = P.trackKey(state.track);
    const before = state.tempo;
    const current = before && before.key === key ? before.pref : null;
    const preference = current === pref ? "clear" : pref;
    setTempo(preference === "clear" ? null : { key, pref: preference });
    render();
    try {
      const reply = await socket.request({ type: "SEND_TEMPO_REQUEST", sessionId, clientId, preference });
      if (reply.type === "NACK") {
        setTempo(before);
        P.toast(reply.error);
      }
    } catch (e) {
      setTempo(before);
      P.toast("Connection lost — your tempo vote was not sent");
    }
    render();
  }

  async function thank() {
    if (!state.subscribed) {
      P.toast("Not connected — try again in a moment");
      return;
    }
    state.thanksBusy = true;
    render();
    try {
      const reply = await socket.request({ type: "SEND_REACTION", sessionId, clientId, reaction: "thank_you" });
      P.toast(reply.type === "ACK" ? `Thank-you sent to ${state.djName || "the DJ"}` : reply.error);
    } catch (e) {
      P.toast("Connection lost — try again in a moment");
    }
    setTimeout(() => {
      state.thanksBusy = false;
      render();
    }, 3000);
  }

  function startPoll(msg) {
    let mine = null;
    if (msg.hasVoted === true) {
      mine = typeof msg.votedOptionIndex === "number" ? msg.votedOptionIndex : -1;
    } else if (msg.hasVoted === undefined) {
      const stored = P.store(`pika.vote.${msg.pollId}`, null);
      mine = typeof stored === "number" ? stored : null;
    }
    state.poll = Object.assign(P.pollFrom(msg), { mine });
  }

  function vote(index) {
    const poll = state.poll;
    if (!poll || poll.ended || poll.mine !== null) return;
    if (!state.subscribed) {
      P.toast("Not connected — try again in a moment");
      return;
    }
    socket.request({ type: "VOTE_ON_POLL", pollId: poll.pollId, optionIndex: index, clientId }).catch(() => {
      P.toast("Connection lost — your vote was not sent");
    });
  }

  // -- announcements as notifications (Web Push), asked for only after a tap ---------------------

  let pushKey = null; // the server's VAPID public key; null: push is off here

  async function setUpPush() {
    if (!("PushManager" in window) || !("Notification" in window) || !navigator.serviceWorker) return;
    const res = await P.api("/api/push/key");
    if (!res.ok || !res.body || !res.body.publicKey) return;
    pushKey = res.body.publicKey;
    const sub = await P.pushSubscription();
    renderPush(!!sub && P.store(PUSH_KEY, null) === sub.endpoint);
    P.show($("push"), true);
  }

  function renderPush(on) {
    const button = $("push-button");
    button.setAttribute("aria-pressed", String(on));
    button.textContent = on ? "Stop announcement notifications" : "Notify me about announcements";
    $("push-status").textContent = on
      ? "This phone gets the DJ's announcements, even with the screen off."
      : "The DJ's announcements reach you even with the screen off.";
  }

  async function pushTap() {
    const button = $("push-button");
    button.disabled = true;
    try {
      if (button.getAttribute("aria-pressed") === "true") await stopPush();
      else await startPush();
    } catch (e) {
      P.toast((e && e.message) || "Notifications are not available on this phone");
    } finally {
      button.disabled = false;
    }
  }

  async function startPush() {
    const sub = await P.pushSubscribe(pushKey);
    const body = Object.assign(sub.toJSON(), { clientId, sessionId });
    const res = await P.api("/api/push/subscribe", { json: body });
    if (!res.ok) {
      await sub.unsubscribe();
      throw new Error((res.body && res.body.error) || "Could not turn notifications on");
    }
    P.save(PUSH_KEY, sub.endpoint);
    renderPush(true);
  }

  async function stopPush() {
    const sub = await P.pushSubscription();
    if (sub) {
      const res = await P.api("/api/push/subscribe", { method: "DELETE", json: { endpoint: sub.endpoint } });
      if (!res.ok) throw new Error((res.body && res.body.error) || "Could not turn notifications off");
      await sub.unsubscribe();
    }
    P.save(PUSH_KEY, null);
    renderPush(false);
  }

  // -- rendering ---------------------------------------------------------------------------------

  /** What the page last knew, kept so that the offline shell (sw.js) shows it with "signal lost". */
  function saveLast() {
    const { djName, track, ended, announcement, history } = state;
    P.save(LAST_KEY, { djName, track, ended, announcement, history });
  }

  function render() {
    saveLast();
    renderNow();
    renderLike();
    renderTempo();
    renderPoll();
    renderAnnouncement();
    renderHistory();
  }

  function renderNow() {
    const track = state.ended ? null : state.track;
    P.show($("session-ended"), state.ended);
    P.show($("now-playing"), !state.ended);
    P.show($("actionbar"), !state.ended);
    P.show($("share"), !state.ended);
    $("ended-thanks").textContent = state.djName ? `${state.djName} thanks you for dancing!` : "Thanks for dancing!";
    renderConnection();
    $("dj-name").textContent = state.djName || "…";
    $("dj-verb").textContent = state.ended ? "played here" : track ? "is playing" : "is live";
    P.show($("track"), !!track);
    P.show($("nothing-playing"), !track && !state.ended);
    P.show($("tempo"), !state.ended);
    if (track) {
      $("track-title").textContent = track.title;
      $("track-artist").textContent = track.artist;
      const bpm = $("track-bpm");
      P.show(bpm, typeof track.bpm === "number");
      if (typeof track.bpm === "number") bpm.textContent = `${Math.round(track.bpm)} BPM`;
      const key = $("track-key");
      P.show(key, !!track.key);
      if (track.key) key.textContent = `Key ${track.key}`;
      document.title = `${track.title} — ${track.artist} · Pika!`;
    } else {
      document.title = state.djName ? `${state.djName} · Pika!` : "Pika! — live";
    }
    const listeners = $("listener-count");
    P.show(listeners, typeof state.listeners === "number" && !state.ended);
    listeners.textContent = P.plural(state.listeners || 0, "listener");
  }

  function renderLike() {
    const button = $("like-button");
    const track = state.ended ? null : state.track;
    button.disabled = !track;
    const key = track ? P.trackKey(track) : null;
    const liked = !!(key && state.liked[key]);
    button.setAttribute("aria-pressed", String(liked));
    button.dataset.queued = String(!!(key && liked && queuedLike(key)));
    $("like-label").textContent = liked ? "Liked · undo" : "Like";
    $("thanks-button").disabled = state.ended || state.thanksBusy;
  }

  function renderTempo() {
    const key = state.track ? P.trackKey(state.track) : null;
    const pref = state.tempo && state.tempo.key === key ? state.tempo.pref : null;
    for (const button of document.querySelectorAll("[data-pref]")) {
      button.setAttribute("aria-pressed", String(button.dataset.pref === pref));
      button.disabled = !state.track;
    }
  }

  let pollDom = null; // {pollId, buttons: [{button, bar, count}]}

  function renderPoll() {
    const poll = state.poll;
    P.show($("poll"), !!poll);
    if (!poll) {
      pollDom = null;
      return;
    }
    if (!pollDom || pollDom.pollId !== poll.pollId) buildPoll(poll);
    const total = poll.totalVotes || 0;
    poll.options.forEach((option, i) => {
      const { button, bar, count } = pollDom.buttons[i];
      P.showShare(bar, count, poll.votes[i] || 0, total);
      button.disabled = poll.ended || poll.mine !== null;
      button.dataset.mine = String(poll.mine === i);
      button.dataset.winner = String(poll.ended && poll.winnerIndex === i);
    });
    $("poll-label").textContent = poll.ended ? "Poll closed" : "Poll";
    const votes = P.plural(total, "vote");
    const mine = poll.mine !== null && poll.mine >= 0 ? poll.options[poll.mine] : null;
    const voted = mine !== null ? `You voted for “${mine}”` : poll.mine === -1 ? "You already voted" : null;
    let status;
    if (poll.ended) {
      const winner = poll.winnerIndex >= 0 ? poll.options[poll.winnerIndex] : null;
      status = winner ? `Result: “${winner}” wins · ${votes}` : "Poll closed — no votes";
      if (voted) status += ` · ${voted.replace("You", "you")}`;
    } else {
      const left = socket.secondsLeft(poll.endsAt);
      status = `${voted || "Tap an option to vote"} · ${votes}` + (left !== null ? ` · closes in ${P.duration(left)}` : "");
    }
    $("poll-status").textContent = status;
  }

  function buildPoll(poll) {
    const list = $("poll-options");
    list.replaceChildren();
    $("poll-question").textContent = poll.question;
    pollDom = { pollId: poll.pollId, buttons: [] };
    poll.options.forEach((option, i) => {
      const bar = P.el("span", { class: "bar" });
      const count = P.el("span", { class: "count", dataset: { testid: `poll-count-${i}` } });
      const button = P.el(
        "button",
        { type: "button", class: "poll-option", dataset: { testid: `poll-option-${i}` }, on: { click: () => vote(i) } },
        bar,
        P.el("span", { dataset: { testid: `poll-option-label-${i}` } }, option),
        count
      );
      list.append(P.el("li", {}, button));
      pollDom.buttons.push({ button, bar, count });
    });
  }

  function renderAnnouncement() {
    const a = state.announcement;
    const left = a ? socket.secondsLeft(a.endsAt) : null;
    if (a && left === 0) state.announcement = null; // expired: the server's cancel may still be on its way
    const visible = !!state.announcement && !state.ended;
    P.show($("announcement"), visible);
    if (!visible) return;
    $("announcement-from").textContent = `From ${a.djName || state.djName || "the DJ"}`;
    $("announcement-message").textContent = a.message;
    const countdown = $("announcement-countdown");
    P.show(countdown, left !== null);
    if (left !== null) {
      countdown.textContent = `${P.duration(left)} left`;
      countdown.dataset.seconds = String(left);
    }
  }

  function renderHistory() {
    const list = $("history");
    const current = state.track ? P.trackKey(state.track) : null;
    let rows = state.history;
    if (rows.length && current && P.trackKey(rows[0]) === current) rows = rows.slice(1);
    list.replaceChildren(
      ...rows.map((play) => {
        const key = P.trackKey(play);
        const liked = !!state.liked[key];
        return P.el(
          "li",
          { dataset: { testid: "history-item" } },
          P.el(
            "div",
            { class: "grow" },
            P.el("div", { class: "line1", dataset: { testid: "history-title" } }, play.title),
            P.el("div", { class: "line2" }, `${play.artist} · ${P.clock(play.playedAt)}`)
          ),
          P.el(
            "button",
            {
              type: "button",
              class: "mini-like",
              "aria-pressed": String(liked),
              "aria-label": `${liked ? "Unlike" : "Like"} ${play.title}`,
              dataset: { testid: "history-like" },
              on: { click: () => toggleLike(play) },
            },
            "♥"
          )
        );
      })
    );
    P.show($("history-empty"), rows.length === 0);
  }

  // -- start -------------------------------------------------------------------------------------

  $("like-button").addEventListener("click", () => toggleLike(state.track));
  $("thanks-button").addEventListener("click", thank);
  for (const button of document.querySelectorAll("[data-pref]")) {
    button.addEventListener("click", () => tempoTap(button.dataset.pref));
  }
  $("recap-link").href = `/recap/${encodeURIComponent(sessionId)}`;
  $("qr").src = `/live/${encodeURIComponent(sessionId)}/qr.svg`;
  const share = $("share-link");
  share.href = location.href;
  share.textContent = location.host + location.pathname;
  window.addEventListener("online", () => flush());
  setInterval(() => {
    if (state.announcement) renderAnnouncement();
    if (state.poll && state.poll.endsAt && !state.poll.ended) renderPoll();
  }, 1000);
  $("push-button").addEventListener("click", pushTap);
  Object.assign(state, P.store(LAST_KEY, {})); // the last state known, until the server answers
  render();
  loadHistory();
  socket.start();
  P.registerWorker();
  setUpPush();
})();
