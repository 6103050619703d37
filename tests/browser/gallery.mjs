// Drives Debian's Chromium (through playwright-core) over the `s3gate demo`
// gallery for tests/browser.rs, and prints one JSON document on stdout with
// what the browser saw. It asserts nothing itself: the Rust test does.
//
//   node tests/browser/gallery.mjs <gallery> <gateway> <store> <artifact-dir>
//
// Environment:
//   S3GATE_CHROMIUM           the browser (default /usr/bin/chromium)
//   S3GATE_PRESIGN_WINDOW_S   the redirect integration's signing window (default 300)
//
// Steps (each wait is bounded):
//   1. first load of the gallery in a fresh profile; wait for its images and
//      the video's metadata;
//   2. a marker request (GET /v1/browser-test-mark-2) so the Rust test can
//      split the gateway's log, then a second load of the gallery in a new tab
//      of the same browser context, then another marker (…-mark-3);
//   3. on the second page: a Range fetch of the clip and a seek of the video,
//      then a screenshot;
//   4. the same list fetch from a page on a disallowed origin (served here).
// Chromium's network events (CDP) are recorded for every page, with whether
// each response came from the network or the browser's cache.

import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [gallery, gateway, store, artifacts] = process.argv.slice(2);
if (!artifacts) {
  console.error("usage: node gallery.mjs <gallery> <gateway> <store> <artifact-dir>");
  process.exit(2);
}
const executablePath = process.env.S3GATE_CHROMIUM || "/usr/bin/chromium";
const windowS = Number(process.env.S3GATE_PRESIGN_WINDOW_S || "300");
const storeOrigin = new URL(store).origin;
const gatewayOrigin = new URL(gateway).origin;
const listLocator = "s3://demo/images/";
const clipLocator = "s3://demo-stream/video/clip.webm";
const objectUrl = (locator) => `${gateway}/v1/object?locator=${encodeURIComponent(locator)}`;

const GALLERY_TIMEOUT_MS = 20_000;
const MEDIA_TIMEOUT_MS = 10_000;
const PROBE_TIMEOUT_MS = 10_000;
// Seconds the signing window must have left when the first load starts.
const WINDOW_MARGIN_S = 30;
// The whole run, window alignment included.
const WATCHDOG_MS = 150_000;

const log = (...args) => console.error("[gallery.mjs]", ...args);
const watchdog = setTimeout(() => {
  console.error(`[gallery.mjs] gave up after ${WATCHDOG_MS} ms`);
  process.exit(3);
}, WATCHDOG_MS);

/** Records Chromium's network events of `page`: one hop per response (a redirect is a hop). */
async function recordNetwork(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  const requests = new Map();
  const memoryCache = new Set();
  const hops = [];
  const failures = [];
  const hop = (requestId, response, type) => ({
    url: response.url,
    status: response.status,
    type: type ?? requests.get(requestId)?.type ?? null,
    range: requests.get(requestId)?.range ?? null,
    fromDiskCache: !!response.fromDiskCache,
    fromMemoryCache: memoryCache.has(requestId),
    fromPrefetchCache: !!response.fromPrefetchCache,
    fromServiceWorker: !!response.fromServiceWorker,
  });
  cdp.on("Network.requestWillBeSent", (e) => {
    if (e.redirectResponse) hops.push(hop(e.requestId, e.redirectResponse, e.type));
    const headers = e.request.headers || {};
    const range = Object.entries(headers).find(([k]) => k.toLowerCase() === "range");
    requests.set(e.requestId, { type: e.type, range: range ? range[1] : null });
  });
  cdp.on("Network.requestServedFromCache", (e) => memoryCache.add(e.requestId));
  cdp.on("Network.responseReceived", (e) => hops.push(hop(e.requestId, e.response, e.type)));
  cdp.on("Network.loadingFailed", (e) =>
    failures.push({ type: e.type, error: e.errorText, canceled: !!e.canceled, cors: e.corsErrorStatus?.corsError ?? null }),
  );
  return { hops, failures };
}

/** What a recording says, in the terms the test asserts on. */
function summarize({ hops, failures }) {
  const fromCache = (h) => h.fromDiskCache || h.fromMemoryCache || h.fromPrefetchCache;
  const locatorOf = (url) => {
    const u = new URL(url);
    return u.origin === gatewayOrigin && u.pathname === "/v1/object" ? u.searchParams.get("locator") : null;
  };
  const storeHops = hops.filter((h) => new URL(h.url).origin === storeOrigin);
  const redirectObjectHops = hops.filter((h) => (locatorOf(h.url) || "").startsWith("s3://demo/"));
  const clipHops = hops.filter((h) => locatorOf(h.url) === clipLocator);
  return {
    store: {
      network: storeHops.filter((h) => !fromCache(h)).length,
      cached: storeHops.filter(fromCache).length,
    },
    redirectObjects: {
      network: redirectObjectHops.filter((h) => !fromCache(h)).length,
      cached: redirectObjectHops.filter(fromCache).length,
      statuses: redirectObjectHops.map((h) => h.status),
    },
    clipMedia: clipHops
      .filter((h) => h.type === "Media")
      .map((h) => ({ status: h.status, range: h.range, fromCache: fromCache(h) })),
    hops,
    failures,
  };
}

/** Loads the gallery in `page` and waits (bounded) for its verdict and images. */
async function loadGallery(page) {
  await page.goto(`${gallery}/`, { waitUntil: "domcontentloaded", timeout: GALLERY_TIMEOUT_MS });
  await page.waitForFunction(() => window.gallery, null, { timeout: GALLERY_TIMEOUT_MS });
  return page.evaluate(() => ({
    gallery: window.gallery,
    status: document.getElementById("status").textContent,
    images: ["redirect", "proxy"].flatMap((grid) =>
      [...document.querySelectorAll(`#${grid} img`)].map((img) => ({
        grid,
        src: img.src,
        complete: img.complete,
        naturalWidth: img.naturalWidth,
        naturalHeight: img.naturalHeight,
      })),
    ),
  }));
}

/** Waits (bounded) until the video knows its duration. */
async function videoMetadata(page) {
  await page.waitForFunction(() => document.getElementById("video").readyState >= 1, null, {
    timeout: MEDIA_TIMEOUT_MS,
  });
  return page.evaluate(() => {
    const v = document.getElementById("video");
    return { readyState: v.readyState, duration: v.duration };
  });
}

async function mark(name) {
  const response = await fetch(`${gateway}/v1/${name}`, { signal: AbortSignal.timeout(5_000) });
  await response.arrayBuffer();
  return response.status;
}

/** A page on another origin than the gallery's, which the gateway does not allow. */
function disallowedServer() {
  const page = `<!doctype html><meta charset="utf-8"><title>not allowed</title>
<h1>A page on an origin the gateway does not allow</h1>
<script>
const gateway = ${JSON.stringify(gateway)};
const attempt = async (url, init) => {
  try {
    const r = await fetch(url, init);
    return { ok: true, status: r.status, body: await r.text() };
  } catch (e) {
    return { ok: false, name: e.name, message: e.message };
  }
};
(async () => {
  const list = await attempt(gateway + "/v1/list?locator=" + encodeURIComponent(${JSON.stringify(listLocator)}));
  const range = await attempt(gateway + "/v1/object?locator=" + encodeURIComponent(${JSON.stringify(clipLocator)}),
    { headers: { Range: "bytes=0-99" }, cache: "no-store" });
  window.probe = { origin: location.origin, list, range };
})();
</script>`;
  const server = createServer((req, res) => {
    if (req.url === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(page);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve(server));
  });
}

/** Waits, if need be, for a fresh signing window, so that both loads fall in one (bounded by the window's margin). */
async function alignToWindow(marginS) {
  const left = windowS - (Math.floor(Date.now() / 1000) % windowS);
  if (left >= marginS) return 0;
  log(`only ${left}s left in the ${windowS}s signing window; waiting for the next one`);
  await new Promise((ok) => setTimeout(ok, (left + 1) * 1000));
  return left + 1;
}

async function main() {
  mkdirSync(artifacts, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), "s3gate-chromium-"));
  const pageServer = await disallowedServer();
  const disallowed = `http://127.0.0.1:${pageServer.address().port}`;
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
    viewport: { width: 1100, height: 900 },
    timeout: 30_000,
  });
  try {
    const result = { disallowedOrigin: disallowed, browserVersion: context.browser()?.version() ?? null };
    const consoleErrors = [];
    context.on("console", (msg) => {
      if (msg.type() === "error") consoleErrors.push(`${msg.page()?.url()}: ${msg.text()}`);
    });

    // 1. First load, in a fresh profile: everything comes from the network.
    // Both loads must fall in one signing window for the second to find the
    // first's URLs in the cache (the 307 is cacheable for the window's rest).
    // Step 1 takes about a second; the margin allows for a slow machine, and
    // the Rust test reports the timing if the second load missed the window.
    result.waitedForWindowS = await alignToWindow(WINDOW_MARGIN_S);
    const first = context.pages()[0] ?? (await context.newPage());
    const firstNet = await recordNetwork(context, first);
    const firstStartS = Date.now() / 1000;
    result.first = await loadGallery(first);
    result.first.video = await videoMetadata(first);
    result.first.network = summarize(firstNet);

    // 2. Second load in a new tab of the same context.
    result.markers = { second: await mark("browser-test-mark-2") };
    const second = await context.newPage();
    const secondNet = await recordNetwork(context, second);
    result.second = await loadGallery(second);
    result.second.secondsAfterFirst = Date.now() / 1000 - firstStartS;
    result.second.network = summarize(secondNet);
    result.markers.third = await mark("browser-test-mark-3");

    // 3. Range fetch and seeking, from the gallery's origin.
    result.range = await second.evaluate(async (url) => {
      const r = await fetch(url, { headers: { Range: "bytes=0-99" }, cache: "no-store" });
      const body = new Uint8Array(await r.arrayBuffer());
      return {
        status: r.status,
        contentRange: r.headers.get("Content-Range"),
        length: body.length,
        bytes: [...body],
      };
    }, objectUrl(clipLocator));
    result.seek = await second.evaluate(async (timeoutMs) => {
      const v = document.getElementById("video");
      const event = (name) =>
        new Promise((resolve) => {
          const timer = setTimeout(() => resolve(false), timeoutMs);
          v.addEventListener(name, () => { clearTimeout(timer); resolve(true); }, { once: true });
        });
      if (v.readyState < 1) await event("loadedmetadata");
      const seekedEvent = event("seeked");
      v.currentTime = 3;
      const seeked = await seekedEvent;
      return { seeked, currentTime: v.currentTime, duration: v.duration, error: v.error ? v.error.code : null };
    }, MEDIA_TIMEOUT_MS);
    // A frame at the new position (HAVE_CURRENT_DATA).
    await second
      .waitForFunction(() => document.getElementById("video").readyState >= 2, null, { timeout: MEDIA_TIMEOUT_MS })
      .catch(() => {});
    result.seek.readyState = await second.evaluate(() => document.getElementById("video").readyState);
    result.seek.clipMedia = summarize(secondNet).clipMedia;
    await second.screenshot({ path: join(artifacts, "gallery.png"), fullPage: true, timeout: 15_000 });
    result.screenshot = join(artifacts, "gallery.png");

    // 4. The same list fetch from a disallowed origin.
    const other = await context.newPage();
    await other.goto(`${disallowed}/`, { waitUntil: "domcontentloaded", timeout: PROBE_TIMEOUT_MS });
    await other.waitForFunction(() => window.probe, null, { timeout: PROBE_TIMEOUT_MS });
    result.disallowed = await other.evaluate(() => window.probe);

    result.consoleErrors = consoleErrors;
    process.stdout.write(JSON.stringify(result) + "\n");
  } finally {
    await context.close().catch(() => {});
    pageServer.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().then(
  () => {
    clearTimeout(watchdog);
    process.exit(0);
  },
  (error) => {
    console.error("[gallery.mjs] failed:", error);
    process.exit(1);
  },
);
