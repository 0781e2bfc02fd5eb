// Swagger UI in a real browser (Debian's Chromium driven by playwright-core), with every request
// that is not to the server's own origin blocked: the UI's assets are embedded by the server. The
// page runs under its Content-Security-Policy, which refuses nothing of it.
// A second test enters the shared secret in the page and runs "Try it out" on the three
// operations: the page signs each request itself (WebCrypto) and shows the server's answer. A
// third does it on a server with two OwnID applications (apps:), a secret per application.
// Environment (set by the test runner): OWNID_BRIDGE_URL, OWNID_SHARED_SECRET, OWNID_TEST_OUT,
// and for the two applications OWNID_APPS_URL, OWNID_APPS_CUSTOMER_SECRET,
// OWNID_APPS_ADMIN_SECRET.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";
import { requiredEnv } from "./env.mjs";

const CHROMIUM = "/usr/bin/chromium";
const OPERATIONS = ["setOwnIDDataByLoginId", "getOwnIDDataByLoginId", "getSessionByLoginId"];

const baseUrl = requiredEnv("OWNID_BRIDGE_URL");
const outDir = requiredEnv("OWNID_TEST_OUT");
const sharedSecret = requiredEnv("OWNID_SHARED_SECRET");
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
  // What the page's Content-Security-Policy refused, as Chromium reports it on the console.
  /** @type {string[]} */
  const refused = [];
  page.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) refused.push(message.text());
  });
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
  assert.match(response?.headers()["content-security-policy"] ?? "", /default-src 'none'/);

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
  await operation.locator(".try-out__btn").first().waitFor({ state: "visible", timeout: 30_000 });
  for (const code of ["200", "404", "401"]) {
    await operation
      .locator(`.responses-table tr.response[data-code="${code}"]`)
      .waitFor({ state: "visible", timeout: 30_000 });
  }
  assert.match(await operation.locator(".opblock-summary-description").innerText(), /Issue a session token/);
  // Each error status shows its own body: the 400's example is invalid_request, not the
  // signature error.
  const badRequest = operation.locator('.responses-table tr.response[data-code="400"]');
  assert.match(await badRequest.innerText(), /invalid_request/);
  assert.doesNotMatch(await badRequest.innerText(), /invalid_signature/);
  // The request example is the README's walkthrough user.
  assert.match(await operation.locator(".opblock-section-request-body").innerText(), /alice@example\.com/);
  // No Authorize dialog (it cannot sign): the panel above the operations signs.
  assert.equal(await page.locator(".swagger-ui .btn.authorize").isVisible(), false);
  assert.equal(await operation.locator(".authorization__btn").first().isVisible(), false);
  // The icon is the server's own.
  const icon = await page.evaluate(async () => {
    const link = /** @type {HTMLLinkElement | null} */ (document.querySelector('link[rel="icon"]'));
    if (!link) return null;
    const answer = await fetch(link.href);
    return { status: answer.status, type: answer.headers.get("content-type") };
  });
  assert.deepEqual(icon, { status: 200, type: "image/svg+xml" });
  // No focus ring from the click in the picture.
  await page.evaluate(() => /** @type {HTMLElement | null} */ (document.activeElement)?.blur());

  mkdirSync(outDir, { recursive: true });
  const screenshot = join(outDir, "swagger-ui.png");
  await page.screenshot({ path: screenshot, fullPage: false });
  assert.ok(statSync(screenshot).size > 10_000, "the screenshot is not a blank page");

  assert.deepEqual(blocked, [], "the page tried to reach something other than the server");
  assert.deepEqual(pageErrors, [], "the page threw");
  assert.deepEqual(refused, [], "the Content-Security-Policy refused part of the page");

  // The guards work: a request elsewhere is refused by the page's Content-Security-Policy
  // (connect-src 'self') before the browser sends it, so the route guard never sees it.
  const canary = "https://canary.invalid/ownid-bridge-offline-check";
  const failed = await page.evaluate(
    (url) => fetch(url).then(() => false, () => true),
    canary,
  );
  assert.equal(failed, true);
  assert.deepEqual(blocked, []);
  await page.waitForTimeout(200);
  // (The assertion above narrowed the list's type to an empty one.)
  const refusedNow = /** @type {string[]} */ (refused);
  assert.ok(refusedNow.some((text) => text.includes(canary)), `not refused by the CSP: ${refusedNow}`);
});

/**
 * Runs "Try it out" on one operation with `body` and returns the status and response body that
 * the page shows. The operation is expanded and put in try-it-out mode on first use.
 *
 * @param {import("playwright-core").Page} page
 * @param {string} operationId
 * @param {string} body
 * @param {string} [base] the path before the operation in the document (several applications)
 * @returns {Promise<{ status: string, text: string }>}
 */
async function tryItOut(page, operationId, body, base = "") {
  const operation = page.locator(".opblock", {
    has: page.locator(`.opblock-summary-path[data-path="${base}/${operationId}"]`),
  });
  // isVisible() does not wait: expand, then wait for the block's body to be there before
  // deciding whether it is in try-it-out mode yet (its body textarea is the sign).
  if (!(await operation.locator(".opblock-body").isVisible())) {
    await operation.locator(".opblock-summary").first().click();
  }
  await operation.locator(".try-out__btn").first().waitFor({ state: "visible", timeout: 30_000 });
  const textarea = operation.locator("textarea.body-param__text");
  if (!(await textarea.isVisible())) {
    await operation.locator(".try-out__btn", { hasText: "Try it out" }).click();
  }
  await textarea.waitFor({ state: "visible", timeout: 30_000 });
  await textarea.fill(body);
  const answered = page.waitForResponse((response) => response.url().endsWith(`${base}/${operationId}`));
  await operation.locator("button.execute").click();
  const response = await answered;
  const status = String(response.status());
  // What the page shows for the live response, once it shows this one.
  const shown = operation.locator(".live-responses-table .response .response-col_status");
  await shown.filter({ hasText: status }).first().waitFor({ state: "visible", timeout: 30_000 });
  const text = await operation.locator(".live-responses-table .response .response-col_description").innerText();
  return { status: (await shown.first().innerText()).trim(), text };
}

/**
 * Opens a new page on the server's /docs, every request elsewhere aborted, recording the page's
 * errors and every request it sends.
 *
 * @param {string} serverUrl
 */
async function openDocs(serverUrl) {
  assert.ok(context);
  const serverOrigin = new URL(serverUrl).origin;
  const page = await context.newPage();
  /** @type {string[]} */
  const pageErrors = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  // A refusal by the page's Content-Security-Policy counts as an error of the page.
  page.on("console", (message) => {
    if (message.text().includes("Content Security Policy")) pageErrors.push(message.text());
  });
  /** @type {import("playwright-core").Request[]} */
  const sent = [];
  page.on("request", (request) => sent.push(request));
  await page.route(
    (url) => url.origin !== serverOrigin,
    (route) => route.abort("blockedbyclient"),
  );
  await page.goto(new URL("/docs", serverUrl).href, { waitUntil: "load" });
  return { page, pageErrors, sent };
}

test("Try it out signs requests in the page once the shared secret is entered", { timeout: 180_000 }, async () => {
  assert.ok(context);
  const { page, pageErrors, sent } = await openDocs(baseUrl);
  await page.locator("#ownid-secret-status").filter({ hasText: "not signing" }).waitFor();

  // Without a secret the request still goes out, and the 401 says what is missing.
  const unsigned = await tryItOut(page, "getOwnIDDataByLoginId", '{"loginId": "user@example.com"}');
  assert.equal(unsigned.status, "401");
  assert.match(unsigned.text, /missing_signature/);

  // A secret that is not base64 is refused in the page.
  await page.locator("#ownid-secret").fill("not base64!");
  await page.locator("#ownid-secret-use").click();
  await page.locator("#ownid-secret-status").filter({ hasText: "secret refused" }).waitFor();

  await page.locator("#ownid-secret").fill(sharedSecret);
  await page.locator("#ownid-secret-use").click();
  await page.locator("#ownid-secret-status").filter({ hasText: "signing on (32-byte key)" }).waitFor();
  assert.equal(await page.locator("#ownid-secret").inputValue(), "", "the input is cleared");

  const data = `from Swagger UI ${Date.now()}`;
  const set = await tryItOut(
    page,
    "setOwnIDDataByLoginId",
    JSON.stringify({ loginId: "user@example.com", ownIdData: data }),
  );
  assert.equal(set.status, "204", set.text);
  const got = await tryItOut(page, "getOwnIDDataByLoginId", '{"loginId": "user@example.com"}');
  assert.equal(got.status, "200", got.text);
  assert.ok(got.text.includes(data), got.text);
  const session = await tryItOut(page, "getSessionByLoginId", '{"loginId": "user@example.com", "sessionType": "browser"}');
  assert.equal(session.status, "200", session.text);
  assert.match(session.text, /"token"/);
  const unknown = await tryItOut(page, "getSessionByLoginId", '{"loginId": "nobody@example.com"}');
  assert.equal(unknown.status, "404", unknown.text);

  // Each signed request carried both headers; the secret never left the page.
  const posts = sent.filter((request) => request.method() === "POST");
  assert.equal(posts.length, 5);
  for (const request of posts.slice(1)) {
    const headers = await request.allHeaders();
    assert.match(headers["ownid-signature"] ?? "", /^[A-Za-z0-9+/]{43}=$/);
    assert.match(headers["ownid-timestamp"] ?? "", /^\d{13}$/);
  }
  for (const request of sent) {
    const everything = JSON.stringify([request.url(), await request.allHeaders(), request.postData()]);
    assert.ok(!everything.includes(sharedSecret), `the secret was sent to ${request.url()}`);
  }
  assert.equal(await page.evaluate(() => localStorage.length), 0, "nothing in localStorage");
  assert.equal(
    await page.evaluate(() => sessionStorage.getItem("ownid-bridge.shared-secret")),
    sharedSecret,
  );

  // The picture: the secret panel and getOwnIDDataByLoginId's signed answer, the other two
  // operations folded away.
  for (const operationId of ["setOwnIDDataByLoginId", "getSessionByLoginId"]) {
    const operation = page.locator(".opblock", {
      has: page.locator(`.opblock-summary-path[data-path="/${operationId}"]`),
    });
    await operation.locator(".opblock-summary").first().click();
    await operation.locator(".opblock-body").waitFor({ state: "detached", timeout: 30_000 });
  }
  await page.evaluate(() => {
    /** @type {HTMLElement | null} */ (document.activeElement)?.blur();
    window.scrollTo(0, 0);
  });
  mkdirSync(outDir, { recursive: true });
  const screenshot = join(outDir, "swagger-ui-try-it-out.png");
  // Down to the live response of getOwnIDDataByLoginId.
  const live = page.locator(".opblock", {
    has: page.locator('.opblock-summary-path[data-path="/getOwnIDDataByLoginId"]'),
  }).locator(".live-responses-table");
  const bottom = await live.evaluate((table) => table.getBoundingClientRect().bottom + window.scrollY);
  await page.setViewportSize({ width: 1280, height: Math.ceil(bottom) + 24 });
  await page.screenshot({ path: screenshot, fullPage: false });
  assert.ok(statSync(screenshot).size > 10_000, "the screenshot is not a blank page");
  assert.deepEqual(pageErrors, [], "the page threw");

  // Forget: the next request goes unsigned again.
  await page.locator("#ownid-secret-forget").click();
  const forgotten = await tryItOut(page, "getOwnIDDataByLoginId", '{"loginId": "user@example.com"}');
  assert.equal(forgotten.status, "401");
  await page.close();
});

test("With several applications, the page keeps a secret per application and signs each one's paths with it", { timeout: 180_000 }, async () => {
  assert.ok(context);
  const appsUrl = requiredEnv("OWNID_APPS_URL");
  const customerSecret = requiredEnv("OWNID_APPS_CUSTOMER_SECRET");
  const adminSecret = requiredEnv("OWNID_APPS_ADMIN_SECRET");
  const { page, pageErrors, sent } = await openDocs(appsUrl);

  // Each application's three operations, under its base path; the selector names both.
  for (const base of ["/ownid/customer", "/ownid/admin"]) {
    for (const operationId of OPERATIONS) {
      await page
        .locator(`.opblock-summary-path[data-path="${base}/${operationId}"]`)
        .waitFor({ state: "visible", timeout: 30_000 });
    }
  }
  assert.deepEqual(await page.locator("#ownid-app option").allInnerTexts(), [
    "customer (/ownid/customer)",
    "admin (/ownid/admin)",
  ]);
  const status = page.locator("#ownid-secret-status");
  await status.filter({ hasText: "customer: not signing" }).waitFor();

  // The admin application's secret, entered for admin.
  await page.locator("#ownid-app").selectOption("admin");
  await status.filter({ hasText: "admin: not signing" }).waitFor();
  await page.locator("#ownid-secret").fill(adminSecret);
  await page.locator("#ownid-secret-use").click();
  await status.filter({ hasText: "admin: signing on (32-byte key)" }).waitFor();

  const data = `admin data ${Date.now()}`;
  const adminSet = await tryItOut(
    page,
    "setOwnIDDataByLoginId",
    JSON.stringify({ loginId: "user@example.com", ownIdData: data }),
    "/ownid/admin",
  );
  assert.equal(adminSet.status, "204", adminSet.text);
  // The customer application has no secret yet: its request goes out unsigned, although the
  // admin application's secret is there.
  const customerUnsigned = await tryItOut(
    page, "getOwnIDDataByLoginId", '{"loginId": "user@example.com"}', "/ownid/customer",
  );
  assert.equal(customerUnsigned.status, "401");
  assert.match(customerUnsigned.text, /missing_signature/);

  // The admin application's secret entered for customer is refused by the server.
  await page.locator("#ownid-app").selectOption("customer");
  await page.locator("#ownid-secret").fill(adminSecret);
  await page.locator("#ownid-secret-use").click();
  await status.filter({ hasText: "customer: signing on" }).waitFor();
  const customerWrong = await tryItOut(
    page, "getOwnIDDataByLoginId", '{"loginId": "user@example.com"}', "/ownid/customer",
  );
  assert.equal(customerWrong.status, "401");
  assert.match(customerWrong.text, /invalid_signature/);

  // With its own secret: customer's user has no data (admin's write went to admin's table),
  // and admin's requests are still signed with admin's secret.
  await page.locator("#ownid-secret").fill(customerSecret);
  await page.locator("#ownid-secret-use").click();
  const customerGet = await tryItOut(
    page, "getOwnIDDataByLoginId", '{"loginId": "user@example.com"}', "/ownid/customer",
  );
  assert.equal(customerGet.status, "204", customerGet.text);
  const adminGet = await tryItOut(
    page, "getOwnIDDataByLoginId", '{"loginId": "user@example.com"}', "/ownid/admin",
  );
  assert.equal(adminGet.status, "200", adminGet.text);
  assert.ok(adminGet.text.includes(data), adminGet.text);

  assert.equal(
    await page.evaluate(() => sessionStorage.getItem("ownid-bridge.shared-secret:admin")),
    adminSecret,
  );
  assert.equal(
    await page.evaluate(() => sessionStorage.getItem("ownid-bridge.shared-secret:customer")),
    customerSecret,
  );
  for (const request of sent) {
    const everything = JSON.stringify([request.url(), await request.allHeaders(), request.postData()]);
    assert.ok(
      !everything.includes(customerSecret) && !everything.includes(adminSecret),
      `a secret was sent to ${request.url()}`,
    );
  }
  assert.deepEqual(pageErrors, [], "the page threw");

  // The picture: the selector with both applications, and each one's operations under its tag
  // (the operations opened above folded away).
  const open = page.locator(".opblock.is-open .opblock-summary");
  while ((await open.count()) > 0) {
    await open.first().click();
  }
  await page.locator(".opblock.is-open").waitFor({ state: "detached", timeout: 30_000 });
  await page.evaluate(() => {
    /** @type {HTMLElement | null} */ (document.activeElement)?.blur();
    window.scrollTo(0, 0);
  });
  await page.setViewportSize({ width: 1280, height: 1060 });
  mkdirSync(outDir, { recursive: true });
  const screenshot = join(outDir, "swagger-ui-apps.png");
  await page.screenshot({ path: screenshot, fullPage: false });
  assert.ok(statSync(screenshot).size > 10_000, "the screenshot is not a blank page");
  await page.close();
});

test("The page signs requests to its own origin only", { timeout: 120_000 }, async () => {
  assert.ok(context);
  const { page, pageErrors } = await openDocs(baseUrl);
  await page.locator("#ownid-secret").fill(sharedSecret);
  await page.locator("#ownid-secret-use").click();
  await page.locator("#ownid-secret-status").filter({ hasText: "signing on" }).waitFor();

  // Swagger UI hands each request to the page's interceptor: whatever makes it send one
  // elsewhere (a server entry, an edited URL) must not get a signature an attacker could replay
  // against this server within the clock skew.
  const own = new URL(baseUrl);
  const elsewhere = [
    "http://attacker.invalid/ownid/getSessionByLoginId",
    "//attacker.invalid/ownid/getSessionByLoginId",
    `${own.protocol}//${own.hostname}:${Number(own.port) + 1}/ownid/getSessionByLoginId`,
    `https://${own.host}/ownid/getSessionByLoginId`,
  ];
  const signatures = await page.evaluate(async (urls) => {
    /** @type {Record<string, string | null>} */
    const result = {};
    for (const url of [...urls, "/ownid/getSessionByLoginId"]) {
      // @ts-ignore: the page's own global, the requestInterceptor Swagger UI calls.
      const request = await ownidSign({
        url,
        method: "POST",
        headers: {},
        body: '{"loginId":"alice@example.com"}',
      });
      result[url] = request.headers["ownid-signature"] ?? null;
    }
    return result;
  }, elsewhere);
  for (const url of elsewhere) {
    assert.equal(signatures[url], null, `a request to ${url} was signed`);
  }
  assert.match(signatures["/ownid/getSessionByLoginId"] ?? "", /^[A-Za-z0-9+/]{43}=$/);
  assert.deepEqual(pageErrors, [], "the page threw");
  await page.close();
});
