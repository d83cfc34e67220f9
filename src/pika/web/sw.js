/* Pika!'s service worker, served as /sw.js so its scope is the whole site (it controls /live/…).
 * It shows the DJ's pushed announcements (title = DJ name, body = message; a tap opens the live
 * page), and keeps the dancer page's shell so /live/<id> opens without a network: the page then
 * shows the last state it knew and "signal lost" until the server answers again. */
"use strict";

const CACHE = "pika-shell-v1";
const SHELL = "/live/_offline_shell"; // any /live/<id> is the same page: one cached copy serves all
const LIVE_PAGE = /^\/live\/[A-Za-z0-9_-]{8,64}$/;
const ASSET = /["'](\/static\/[A-Za-z0-9._-]+\?v=[0-9a-f]+)["']/g;

/** Fetch the player page and every versioned asset it names, and keep them. */
async function keepShell(cache) {
  const response = await fetch(SHELL, { cache: "no-cache" });
  if (!response.ok) return;
  const html = await response.clone().text();
  const assets = Array.from(html.matchAll(ASSET), (m) => m[1]);
  await cache.addAll(assets);
  await cache.put(SHELL, response);
}

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then(keepShell).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
      .then(() => self.clients.claim())
  );
});

async function livePage(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok) await keepShell(cache).catch(() => undefined); // a new release: new assets
    return response;
  } catch (e) {
    return (await cache.match(SHELL)) || Response.error();
  }
}

async function asset(request) {
  const cache = await caches.open(CACHE);
  const kept = await cache.match(request);
  if (kept) return kept; // versioned names (?v=<digest>) never change content
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== "GET" || url.origin !== self.location.origin) return;
  if (event.request.mode === "navigate" && LIVE_PAGE.test(url.pathname)) {
    event.respondWith(livePage(event.request));
  } else if (url.pathname.startsWith("/static/") && url.searchParams.has("v")) {
    event.respondWith(asset(event.request));
  }
});

self.addEventListener("push", (event) => {
  let data = {};
  try {
    data = event.data ? event.data.json() : {};
  } catch (e) {
    data = { body: event.data ? event.data.text() : "" };
  }
  const title = data.title || "Pika!";
  event.waitUntil(
    self.registration.showNotification(title, {
      body: data.body || "",
      icon: "/static/icon.svg",
      tag: `pika-announcement-${data.sessionId || ""}`,
      data: { url: data.url || "/live" },
    })
  );
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const target = new URL(event.notification.data.url, self.location.origin).href;
  event.waitUntil(
    self.clients.matchAll({ type: "window", includeUncontrolled: true }).then((windows) => {
      const open = windows.find((w) => w.url === target);
      return open ? open.focus() : self.clients.openWindow(target);
    })
  );
});
