/* A DJ's page (/dj/{slug}): name, totals and past sessions, each linking to its set list. */
"use strict";

(function () {
  const P = window.Pika;
  const $ = P.$;
  const slug = decodeURIComponent(location.pathname.split("/")[2] || "");

  async function load() {
    const res = await P.api(`/api/dj/${encodeURIComponent(slug)}`);
    if (!res.ok) {
      $("dj-profile-name").textContent = "DJ not found";
      const error = $("dj-error");
      error.textContent = res.status === 404 ? "No DJ has this address." : (res.body && res.body.error) || "Could not load this DJ.";
      error.hidden = false;
      return;
    }
    const dj = res.body;
    document.title = `${dj.djName} · Pika!`;
    $("dj-profile-name").textContent = dj.djName;
    $("dj-total-sessions").textContent = dj.totalSessions;
    $("dj-total-tracks").textContent = dj.totalTracks;
    const live = dj.sessions.find((s) => !s.endedAt);
    $("dj-live-now").textContent = live ? "LIVE" : "off";
    $("dj-stats").hidden = false;
    $("dj-sessions").replaceChildren(
      ...dj.sessions.map((s) => {
        const href = s.endedAt ? `/recap/${encodeURIComponent(s.id)}` : `/live/${encodeURIComponent(s.id)}`;
        return P.el(
          "li",
          { dataset: { testid: "dj-session" } },
          P.el(
            "div",
            { class: "grow" },
            P.el("div", { class: "line1" }, P.el("a", { href }, P.date(s.startedAt))),
            P.el("div", { class: "line2" }, `${P.clock(s.startedAt)}${s.endedAt ? "–" + P.clock(s.endedAt) : ""} · ${P.plural(s.trackCount, "track")}`)
          ),
          s.endedAt ? P.el("a", { class: "side", href }, "Set list") : P.el("a", { class: "chip chip-live", href }, "LIVE")
        );
      })
    );
    P.show($("dj-no-sessions"), dj.sessions.length === 0);
  }

  load();
})();
