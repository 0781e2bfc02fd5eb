// The generated client (openapi-typescript types + openapi-fetch) against a running server.
// Environment (set by the test runner): OWNID_BRIDGE_URL, OWNID_SHARED_SECRET, OWNID_TEST_USER.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";

import { createOwnIdBridgeClient, decodeSharedSecret, signatureFor } from "../src/client.mjs";
import { requiredEnv } from "./env.mjs";

const baseUrl = requiredEnv("OWNID_BRIDGE_URL");
const sharedSecret = requiredEnv("OWNID_SHARED_SECRET");
const testUser = requiredEnv("OWNID_TEST_USER");
const unknownUser = `nobody-${randomUUID()}@example.invalid`;

// 4-byte UTF-8 sequences (emoji, a musical symbol), 2- and 3-byte ones, and JSON-escaped
// characters: the signature must cover the raw bytes and the server must store them unchanged.
const ownIdData = `eyJkZXZpY2VzIjpbXX0=|🔐😀𝄞|é€|"quoted"\\|${randomUUID()}`;

const client = createOwnIdBridgeClient({ baseUrl, sharedSecret });

describe("request signing", () => {
  it("matches the test vector in SPEC.md", () => {
    const key = decodeSharedSecret("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
    const body = new TextEncoder().encode('{"loginId":"user@example.com","ownIdData":"ownid==abc"}');
    assert.equal(signatureFor(key, body, "1717000000000"), "zvTkk3T4pxfM6rvszpQr+jyynM6K7UFBtjZKE0yBfbE=");
  });

  it("rejects a shared secret that is not base64", () => {
    assert.throws(() => decodeSharedSecret("not base64!"), /not standard base64/);
    assert.throws(() => decodeSharedSecret(""), /empty/);
  });
});

// The calls below change OWNID_TEST_USER's data, so they run in order (node:test runs the tests
// of one file one after the other unless asked otherwise).
describe("generated client against the server", () => {
  it("getOwnIDDataByLoginId answers 204 with no body for a user without data", async () => {
    const { data, error, response } = await client.POST("/getOwnIDDataByLoginId", {
      body: { loginId: testUser },
    });
    assert.equal(response.status, 204);
    assert.equal(data, undefined);
    assert.equal(error, undefined);
  });

  it("setOwnIDDataByLoginId answers 204", async () => {
    const { data, error, response } = await client.POST("/setOwnIDDataByLoginId", {
      body: { loginId: testUser, ownIdData },
    });
    assert.equal(response.status, 204);
    assert.equal(data, undefined);
    assert.equal(error, undefined);
  });

  it("getOwnIDDataByLoginId answers 200 with the value stored, byte for byte", async () => {
    const { data, error, response } = await client.POST("/getOwnIDDataByLoginId", {
      body: { loginId: testUser },
    });
    assert.equal(response.status, 200, `unexpected error body ${JSON.stringify(error)}`);
    assert.match(response.headers.get("content-type") ?? "", /^application\/json\b/);
    // `data` is typed OwnIdData (the committed document is the standard response mode's).
    assert.ok(data !== undefined && "ownIdData" in data, `unexpected body ${JSON.stringify(data)}`);
    assert.equal(data.ownIdData, ownIdData);
  });

  it("getSessionByLoginId answers 200 with a JWT and its expiry", async () => {
    const before = Math.floor(Date.now() / 1000);
    const { data, error, response } = await client.POST("/getSessionByLoginId", {
      body: { loginId: testUser, sessionType: "browser" },
    });
    assert.equal(response.status, 200, `unexpected error body ${JSON.stringify(error)}`);
    // `data` is typed SessionToken.
    assert.ok(data !== undefined && "token" in data, `unexpected body ${JSON.stringify(data)}`);
    const parts = data.token.split(".");
    assert.equal(parts.length, 3, "a JWT has three dot-separated parts");
    for (const part of parts) {
      assert.match(part, /^[A-Za-z0-9_-]+$/, "each JWT part is non-empty base64url");
    }
    assert.equal(typeof data.expiresAt, "number");
    assert.ok(Number.isInteger(data.expiresAt) && data.expiresAt > before, "expiresAt is in the future");
    const payload = JSON.parse(Buffer.from(parts[1] ?? "", "base64url").toString("utf8"));
    assert.equal(payload.exp, data.expiresAt, "expiresAt is the token's exp");
    assert.equal(typeof payload.jti, "string");
  });

  for (const operation of /** @type {const} */ ([
    "/setOwnIDDataByLoginId",
    "/getOwnIDDataByLoginId",
    "/getSessionByLoginId",
  ])) {
    it(`${operation.slice(1)} answers 404 with an empty body for an unknown login id`, async () => {
      const { data, error, response } =
        operation === "/setOwnIDDataByLoginId"
          ? await client.POST(operation, { body: { loginId: unknownUser, ownIdData } })
          : await client.POST(operation, { body: { loginId: unknownUser } });
      assert.equal(response.status, 404);
      // openapi-fetch returns neither data nor error for an empty body: only the status tells
      // "not found" apart from 204 "no data".
      assert.equal(data, undefined);
      assert.equal(error, undefined);
      assert.equal(response.headers.get("content-length"), "0");
    });
  }

  it("an unsigned request is refused with 401 missing_signature", async () => {
    const unsigned = createOwnIdBridgeClient({ baseUrl });
    const { data, error, response } = await unsigned.POST("/getOwnIDDataByLoginId", {
      body: { loginId: testUser },
    });
    assert.equal(response.status, 401);
    assert.equal(data, undefined);
    assert.ok(error, "a 401 has a JSON body");
    assert.equal(error.error, "missing_signature");
    assert.equal(typeof error.message, "string");
  });

  it("a request signed with the secret's text instead of its decoded bytes is refused", async () => {
    // The mistake the spec warns about: base64-encoding the secret's text gives a valid-looking
    // secret whose decoded bytes are the original text.
    const wrong = createOwnIdBridgeClient({
      baseUrl,
      sharedSecret: Buffer.from(sharedSecret, "utf8").toString("base64"),
    });
    const { error, response } = await wrong.POST("/getOwnIDDataByLoginId", {
      body: { loginId: testUser },
    });
    assert.equal(response.status, 401);
    assert.ok(error, "a 401 has a JSON body");
    assert.equal(error.error, "invalid_signature");
  });
});
