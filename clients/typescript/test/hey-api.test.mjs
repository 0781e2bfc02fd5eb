// The SDK that @hey-api/openapi-ts generates (fetch client) against a running server, signed by a
// request interceptor of the generated client. run.sh generates the SDK into generated/hey-api
// and compiles it to generated/hey-api-js, which this file imports.
// Environment (set by the test runner): OWNID_BRIDGE_URL, OWNID_SHARED_SECRET; the login id
// hey-api-client@example.com (OWNID_HEY_API_TEST_USER overrides it) must exist on the server.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";

import { createClient, createConfig } from "../generated/hey-api-js/client/index.js";
import {
  getOwnIdDataByLoginId,
  getSessionByLoginId,
  setOwnIdDataByLoginId,
} from "../generated/hey-api-js/index.js";
import { decodeSharedSecret, signatureFor } from "../src/client.mjs";
import { requiredEnv } from "./env.mjs";

const origin = requiredEnv("OWNID_BRIDGE_URL");
const sharedSecret = requiredEnv("OWNID_SHARED_SECRET");
const testUser = process.env.OWNID_HEY_API_TEST_USER || "hey-api-client@example.com";
const unknownUser = `nobody-${randomUUID()}@example.invalid`;
// Multi-byte UTF-8 and JSON escapes: the signature must cover the bytes actually sent.
const ownIdData = `hey-api|🔐𝄞|é€|"quoted"\\|${randomUUID()}`;

// The spec's server is the relative `/ownid`, so the base URL names the server's origin too.
const baseUrl = new URL("/ownid", origin).href;

/** Bodies the interceptor signed, in order, as the text of their bytes. */
const signedBodies = /** @type {string[]} */ ([]);

const client = createClient(createConfig({ baseUrl }));
const key = decodeSharedSecret(sharedSecret);
let lastTimestamp = 0;
// The request interceptor gets the final Request, after the SDK has serialized the body; it signs
// the bytes read back from a clone, so the signature covers exactly what is sent. Timestamps are
// strictly increasing: the server refuses a signature it has seen before.
client.interceptors.request.use(async (request) => {
  const body = new Uint8Array(await request.clone().arrayBuffer());
  lastTimestamp = Math.max(Date.now(), lastTimestamp + 1);
  const timestamp = String(lastTimestamp);
  request.headers.set("ownid-timestamp", timestamp);
  request.headers.set("ownid-signature", signatureFor(key, body, timestamp));
  signedBodies.push(new TextDecoder().decode(body));
  return request;
});

// Without the interceptor: the server must refuse the request.
const unsignedClient = createClient(createConfig({ baseUrl }));

// The calls change the test user's data, so they run in order (node:test runs the tests of one
// file one after the other unless asked otherwise).
describe("@hey-api/openapi-ts SDK against the server", () => {
  it("setOwnIDDataByLoginId answers 204 for an existing user", async () => {
    const { error, response } = await setOwnIdDataByLoginId({
      client,
      body: { loginId: testUser, ownIdData },
    });
    assert.equal(response.status, 204, `unexpected error body ${JSON.stringify(error)}`);
    assert.equal(signedBodies.at(-1), JSON.stringify({ loginId: testUser, ownIdData }));
  });

  it("getOwnIDDataByLoginId answers 200 with the value just set", async () => {
    const { data, error, response } = await getOwnIdDataByLoginId({
      client,
      body: { loginId: testUser },
    });
    assert.equal(response.status, 200, `unexpected error body ${JSON.stringify(error)}`);
    // `data` is typed OwnIdData (the committed document is the standard response mode's).
    assert.ok(data !== undefined && "ownIdData" in data, `unexpected body ${JSON.stringify(data)}`);
    assert.equal(data.ownIdData, ownIdData);
  });

  it("getSessionByLoginId with sessionType browser answers 200 with a token and its expiry", async () => {
    const before = Math.floor(Date.now() / 1000);
    const { data, error, response } = await getSessionByLoginId({
      client,
      body: { loginId: testUser, sessionType: "browser" },
    });
    assert.equal(response.status, 200, `unexpected error body ${JSON.stringify(error)}`);
    assert.ok(data !== undefined && "token" in data, `unexpected body ${JSON.stringify(data)}`);
    assert.equal(data.token.split(".").length, 3, "the token is a JWT");
    assert.ok(data.expiresAt > before, `expiresAt ${data.expiresAt} is not in the future`);
  });

  it("answers 404 for an unknown login id on each of the three operations", async () => {
    const calls = {
      setOwnIDDataByLoginId: () =>
        setOwnIdDataByLoginId({ client, body: { loginId: unknownUser, ownIdData } }),
      getOwnIDDataByLoginId: () => getOwnIdDataByLoginId({ client, body: { loginId: unknownUser } }),
      getSessionByLoginId: () => getSessionByLoginId({ client, body: { loginId: unknownUser } }),
    };
    for (const [operation, call] of Object.entries(calls)) {
      const { response } = await call();
      assert.equal(response.status, 404, operation);
      assert.equal(response.headers.get("content-length"), "0", `${operation}: empty body`);
    }
  });

  it("refuses a request sent without the interceptor: 401 with the Error body", async () => {
    const { data, error, response } = await getOwnIdDataByLoginId({
      client: unsignedClient,
      body: { loginId: testUser },
    });
    assert.equal(response.status, 401);
    assert.equal(data, undefined);
    // `error` is typed as the union of the operation's error bodies: ErrorBody, and `unknown` for the
    // empty 404, which makes the union `unknown`, hence the narrowing.
    assert.ok(
      typeof error === "object" && error !== null && "error" in error,
      `unexpected body ${JSON.stringify(error)}`,
    );
    assert.equal(error.error, "missing_signature");
  });
});
