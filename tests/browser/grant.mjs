// Loads one page of another origin in Debian's Chromium (through
// playwright-core) for tests/browser.rs' prefix-grant test, and prints one
// JSON document on stdout with what the page reported and what the browser
// sent. It asserts nothing itself: the Rust test does.
//
//   node tests/browser/grant.mjs <page-url>
//
// The page (served by the Rust test) reads the gateway and the grant from its
// URL fragment, loads its images and fetches a listing, then sets
// `window.result`. Every request the browser makes is recorded, with its
// headers, so the test can check that no bearer token ever left the backend.
//
// Environment:
//   S3GATE_CHROMIUM   the browser (default /usr/bin/chromium)

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [pageUrl] = process.argv.slice(2);
if (!pageUrl) {
  console.error("usage: node grant.mjs <page-url>");
  process.exit(2);
}
const executablePath = process.env.S3GATE_CHROMIUM || "/usr/bin/chromium";
const PAGE_TIMEOUT_MS = 20_000;
const WATCHDOG_MS = 60_000;

const watchdog = setTimeout(() => {
  console.error(`[grant.mjs] gave up after ${WATCHDOG_MS} ms`);
  process.exit(3);
}, WATCHDOG_MS);

const profile = mkdtempSync(join(tmpdir(), "s3gate-grant-"));
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
  timeout: 30_000,
});
try {
  const page = await context.newPage();
  const requests = [];
  page.on("request", async (request) => {
    const entry = { url: request.url(), method: request.method(), headers: null };
    requests.push(entry);
    try {
      entry.headers = await request.allHeaders();
    } catch {
      entry.headers = request.headers();
    }
  });
  const console_ = [];
  page.on("console", (m) => console_.push(`${m.type()}: ${m.text()}`));
  await page.goto(pageUrl, { waitUntil: "domcontentloaded", timeout: PAGE_TIMEOUT_MS });
  await page.waitForFunction(() => window.result, null, { timeout: PAGE_TIMEOUT_MS });
  const result = await page.evaluate(() => window.result);
  const html = await page.evaluate(() => document.documentElement.outerHTML);
  const storage = await page.evaluate(() => ({
    cookie: document.cookie,
    local: JSON.stringify(Object.entries(localStorage)),
    session: JSON.stringify(Object.entries(sessionStorage)),
  }));
  const browserVersion = context.browser()?.version() ?? null;
  clearTimeout(watchdog);
  console.log(
    JSON.stringify({
      origin: new URL(pageUrl).origin,
      result,
      html,
      storage,
      requests,
      console: console_,
      browserVersion,
    }),
  );
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
