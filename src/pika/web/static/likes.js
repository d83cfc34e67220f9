/* This browser's likes (/my-likes), by its clientId, newest first; plus any still waiting to be
 * sent from a dance floor without signal. */
"use strict";

(function () {
  const P = window.Pika;
  const $ = P.$;

  function queued() {
    const items = P.store("pika.outbox", []);
    const likes = Array.isArray(items) ? items.filter((i) => i.op === "like") : [];
    $("likes-queued").replaceChildren(
      ...likes.map((i) =>
        P.el(
          "li",
          { dataset: { testid: "queued-like" } },
          P.el("div", { class: "grow" }, P.el("div", { class: "line1" }, i.track.title), P.el("div", { class: "line2" }, i.track.artist)),
          P.el("a", { class: "side", href: `/live/${encodeURIComponent(i.sessionId)}` }, "Open to send")
        )
      )
    );
    P.show($("likes-queued-card"), likes.length > 0);
  }

  async function load() {
    const res = await P.api(`/api/client/${encodeURIComponent(P.clientId())}/likes`);
    if (!res.ok) {
      const error = $("likes-error");
      error.textContent = (res.body && res.body.error) || "Could not load your likes.";
      error.hidden = false;
      return;
    }
    const likes = res.body.likes || [];
    $("likes-summary").textContent = likes.length ? `${P.plural(res.body.totalLikes, "track")} you liked on this phone.` : "Tracks you liked on this phone.";
    $("likes-list").replaceChildren(
      ...likes.map((l) =>
        P.el(
          "li",
          { dataset: { testid: "liked-track" } },
          P.el(
            "div",
            { class: "grow" },
            P.el("div", { class: "line1", dataset: { testid: "liked-title" } }, l.title),
            P.el("div", { class: "line2" }, `${l.artist} · ${l.djName}, ${P.date(l.sessionDate)}`)
          ),
          P.el("a", { class: "side", href: `/recap/${encodeURIComponent(l.sessionId)}` }, "Set list")
        )
      )
    );
    P.show($("likes-empty"), likes.length === 0);
  }

  queued();
  load();
})();
