/* A session's set list (/recap/{sessionId}): every track in play order with its likes and the
 * dancers' tempo votes; shareable with the system share sheet or a copied link. */
"use strict";

(function () {
  const P = window.Pika;
  const $ = P.$;
  const sessionId = decodeURIComponent(location.pathname.split("/")[2] || "");

  function minutes(startIso, endIso) {
    const ms = Date.parse(endIso) - Date.parse(startIso);
    if (isNaN(ms) || ms < 0) return "–";
    const m = Math.round(ms / 60000);
    return m < 60 ? `${m} min` : `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")}`;
  }

  function tempo(t) {
    if (!t) return null;
    return P.el(
      "div",
      { class: "tempo-mini", dataset: { testid: "recap-tempo" } },
      P.el("span", {}, `slower ${t.slower}`),
      P.el("span", {}, `perfect ${t.perfect}`),
      P.el("span", {}, `faster ${t.faster}`)
    );
  }

  function row(track) {
    const details = [track.artist];
    if (typeof track.bpm === "number") details.push(`${Math.round(track.bpm)} BPM`);
    if (track.key) details.push(`key ${track.key}`);
    return P.el(
      "li",
      { dataset: { testid: "recap-track" } },
      P.el("span", { class: "pos" }, track.position),
      P.el(
        "div",
        { class: "grow" },
        P.el("div", { class: "line1", dataset: { testid: "recap-title" } }, track.title),
        P.el("div", { class: "line2" }, details.join(" · ")),
        tempo(track.tempo)
      ),
      P.el(
        "div",
        { class: "side" },
        P.el("div", { class: "likes-count", dataset: { testid: "recap-likes" } }, `♥ ${track.likes}`),
        P.el("div", {}, P.clock(track.playedAt))
      )
    );
  }

  async function load() {
    const res = await P.api(`/api/sessions/${encodeURIComponent(sessionId)}/recap`);
    if (!res.ok) {
      const error = $("recap-error");
      error.textContent = res.status === 404 ? "There is no session at this address." : (res.body && res.body.error) || "Could not load the set list.";
      error.hidden = false;
      return;
    }
    const r = res.body;
    document.title = `${r.djName} — set list · Pika!`;
    $("recap-dj").textContent = `${r.djName}`;
    $("recap-when").textContent = `Set list · ${P.date(r.startedAt)}, ${P.clock(r.startedAt)}${r.endedAt ? "–" + P.clock(r.endedAt) : ""}`;
    $("recap-track-count").textContent = r.trackCount;
    $("recap-total-likes").textContent = r.totalLikes;
    $("recap-duration").textContent = r.endedAt ? minutes(r.startedAt, r.endedAt) : "live";
    $("recap-stats").hidden = false;
    $("recap-live").hidden = !!r.endedAt;
    $("recap-live-link").href = `/live/${encodeURIComponent(sessionId)}`;
    $("recap-tracks").replaceChildren(...r.tracks.map(row));
    P.show($("recap-empty"), r.tracks.length === 0);
  }

  $("share-button").addEventListener("click", async () => {
    const url = location.href;
    if (navigator.share) {
      try {
        await navigator.share({ title: document.title, url });
        return;
      } catch (e) {
        /* dismissed or not allowed: copy instead */
      }
    }
    P.toast((await P.copy(url)) ? "Link copied" : url);
  });

  load();
})();
