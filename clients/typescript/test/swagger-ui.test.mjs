// Swagger UI in a real browser (Debian's Chromium driven by playwright-core), with every request
// that is not to the server's own origin blocked: the UI's assets are embedded by the server.
// Environment (set by the test runner): OWNID_BRIDGE_URL, OWNID_TEST_OUT.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium";
const OPERATIONS = ["setOwnIDDataByLoginId", "getOwnIDDataByLoginId", "getSessionByLoginId"];

/**
 * @param {string} name
 * @returns {string}
 */
function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set (run this through clients/typescript/run.sh)`);
  }
  return value;
}

const baseUrl = requiredEnv("OWNID_BRIDGE_URL");
const outDir = requiredEnv("OWNID_TEST_OUT");
const origin = new URL(baseUrl).origin;

const userDataDir = mkdtempSync(join(tmpdir(), "ownid-bridge-chromium-"));
/** @type {import("playwright-core").BrowserContext | undefined} */
let context;

before(async () => {
  // playwright-core never downloads a browser: it drives the system's Chromium.
  statSync(CHROMIUM);
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
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
    viewport: { width: 1280, height: 1400 },
  });
});

after(async () => {
  await context?.close();
  rmSync(userDataDir, { recursive: true, force: true });
});

test("Swagger UI lists the three operations and expands one, offline", { timeout: 120_000 }, async () => {
  assert.ok(context);
  const page = context.pages()[0] ?? (await context.newPage());

  /** @type {string[]} */
  const blocked = [];
  /** @type {string[]} */
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  // Cut the network off: anything that is not the server itself is aborted and recorded.
  await page.route(
    (url) => url.origin !== origin,
    (route) => {
      blocked.push(route.request().url());
      return route.abort("blockedbyclient");
    },
  );

  const response = await page.goto(new URL("/docs", baseUrl).href, { waitUntil: "load" });
  assert.equal(response?.status(), 200);

  // Swagger UI renders each operation as an .opblock with its path and summary.
  for (const operationId of OPERATIONS) {
    const summary = page.locator(`.opblock-summary-path[data-path="/${operationId}"]`);
    await summary.waitFor({ state: "visible", timeout: 30_000 });
  }
  const paths = await page.locator(".opblock-summary-path").allInnerTexts();
  assert.deepEqual(
    paths.map((text) => text.replace(/\s+/g, "")).sort(),
    OPERATIONS.map((id) => `/${id}`).sort(),
  );
  const title = await page.locator(".info .title").innerText();
  assert.match(title, /ownid-bridge/);

  // Expand the last operation, getSessionByLoginId (so the screenshot shows all three), and wait
  // for its body: the Try-it-out button and the responses table with the documented statuses.
  const operation = page.locator(".opblock", {
    has: page.locator('.opblock-summary-path[data-path="/getSessionByLoginId"]'),
  });
  await operation.locator(".opblock-summary").first().click();
  await operation.locator(".try-out__btn").waitFor({ state: "visible", timeout: 30_000 });
  for (const code of ["200", "404", "401"]) {
    await operation
      .locator(`.responses-table tr.response[data-code="${code}"]`)
      .waitFor({ state: "visible", timeout: 30_000 });
  }
  assert.match(await operation.locator(".opblock-summary-description").innerText(), /Issue a session token/);
  // No focus ring from the click in the picture.
  await page.evaluate(() => /** @type {HTMLElement | null} */ (document.activeElement)?.blur());

  mkdirSync(outDir, { recursive: true });
  const screenshot = join(outDir, "swagger-ui.png");
  await page.screenshot({ path: screenshot, fullPage: false });
  assert.ok(statSync(screenshot).size > 10_000, "the screenshot is not a blank page");

  assert.deepEqual(blocked, [], "the page tried to reach something other than the server");
  assert.deepEqual(pageErrors, [], "the page threw");

  // The guard itself works: a request elsewhere is caught (and aborted before it leaves).
  const canary = "https://canary.invalid/ownid-bridge-offline-check";
  const failed = await page.evaluate(
    (url) => fetch(url).then(() => false, () => true),
    canary,
  );
  assert.equal(failed, true);
  assert.deepEqual(blocked, [canary]);
});
