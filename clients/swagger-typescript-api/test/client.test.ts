// The client swagger-typescript-api generates from the committed openapi/openapi.json (run.sh
// writes it to generated/ownid-bridge.ts), against the running server. tsc compiles this file
// together with the client (strict), so the types below are checked as well as the answers:
// a successful set is `void` (not an error type), a read is `OwnIdData`, errors are `ErrorBody`.
// Every request is signed in the client's `customFetch` over the exact bytes it sends.
// Environment: OWNID_BRIDGE_URL, OWNID_SHARED_SECRET, OWNID_TEST_USER (exists, no ownIdData).
import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { describe, it } from "node:test";

import {
  Api,
  type ErrorBody,
  type HttpResponse,
  type OwnIdData,
  type SessionToken,
  SessionTypeParam,
} from "../generated/ownid-bridge.js";

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
}

const baseUrl = new URL("/ownid", required("OWNID_BRIDGE_URL")).href;
const key = Buffer.from(required("OWNID_SHARED_SECRET"), "base64");
const user = required("OWNID_TEST_USER");
const unknownUser = `nobody-${randomUUID()}@example.invalid`;
// Multi-byte UTF-8 and JSON escapes: the signature must cover the bytes actually sent.
const ownIdData = `swagger-typescript-api|🔐|é€|"quoted"\\|${randomUUID()}`;

// What the generated operations resolve to, checked by tsc: `Equal` is true only for identical
// types, and `true` does not compile where it is false.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Operations = Api<unknown>["ownId"];
type Answer<K extends keyof Operations> = Awaited<ReturnType<Operations[K]>>;
const typed: [
  Equal<Answer<"setOwnIdDataByLoginId">, HttpResponse<void, ErrorBody | void>>,
  Equal<Answer<"getOwnIdDataByLoginId">, HttpResponse<OwnIdData, ErrorBody | void>>,
  Equal<Answer<"getSessionByLoginId">, HttpResponse<SessionToken, ErrorBody | void>>,
] = [true, true, true];

let lastTimestamp = 0;
const signedBodies: string[] = [];
/** fetch that adds both signature headers; timestamps strictly increase (one use per signature). */
const signingFetch: typeof fetch = async (input, init) => {
  const request = new Request(input, init);
  const body = new Uint8Array(await request.clone().arrayBuffer());
  lastTimestamp = Math.max(Date.now(), lastTimestamp + 1);
  const timestamp = String(lastTimestamp);
  const signature = createHmac("sha256", key).update(body).update(".").update(timestamp).digest("base64");
  request.headers.set("ownid-timestamp", timestamp);
  request.headers.set("ownid-signature", signature);
  signedBodies.push(new TextDecoder().decode(body));
  return fetch(request);
};

const api = new Api({ baseUrl, customFetch: signingFetch }).ownId;
const unsigned = new Api({ baseUrl }).ownId;

/** The generated client throws its HttpResponse for any status that is not 2xx. */
async function failure(call: Promise<unknown>): Promise<HttpResponse<unknown, ErrorBody | void>> {
  const thrown = await call.then(
    () => assert.fail("the call succeeded"),
    (error: unknown) => error,
  );
  assert.ok(thrown instanceof Response, `the client threw ${String(thrown)}`);
  return thrown as HttpResponse<unknown, ErrorBody | void>;
}

// The calls change the test user's data, so they run in order.
describe("swagger-typescript-api client against the server", () => {
  it("types each operation's answer (checked by tsc)", () => {
    assert.deepEqual(typed, [true, true, true]);
  });

  it("getOwnIDDataByLoginId: 204 for a user without data, a success without data", async () => {
    const response = await api.getOwnIdDataByLoginId({ loginId: user });
    assert.equal(response.status, 204);
    assert.equal(response.data as OwnIdData | null, null);
  });

  it("setOwnIDDataByLoginId: 204, a success, signed over the bytes sent", async () => {
    const response = await api.setOwnIdDataByLoginId({ loginId: user, ownIdData });
    assert.equal(response.status, 204);
    assert.ok(response.ok);
    assert.equal(response.data, null);
    assert.equal(signedBodies.at(-1), JSON.stringify({ loginId: user, ownIdData }));
  });

  it("getOwnIDDataByLoginId: 200 with the OwnIdData just stored", async () => {
    const response = await api.getOwnIdDataByLoginId({ loginId: user });
    assert.equal(response.status, 200);
    const data: OwnIdData = response.data;
    assert.equal(data.ownIdData, ownIdData);
  });

  it("getSessionByLoginId: 200 with a token, with and without a session type", async () => {
    for (const request of [{ loginId: user, sessionType: SessionTypeParam.Browser }, { loginId: user }]) {
      const response = await api.getSessionByLoginId(request);
      assert.equal(response.status, 200);
      const session: SessionToken = response.data;
      assert.equal(session.token.split(".").length, 3);
      assert.ok(session.expiresAt > Date.now() / 1000, `expiresAt ${session.expiresAt}`);
    }
  });

  it("an unknown login id: 404 from all three operations", async () => {
    for (const call of [
      () => api.setOwnIdDataByLoginId({ loginId: unknownUser, ownIdData }),
      () => api.getOwnIdDataByLoginId({ loginId: unknownUser }),
      () => api.getSessionByLoginId({ loginId: unknownUser }),
    ]) {
      assert.equal((await failure(call())).status, 404);
    }
  });

  it("an unsigned request: 401 with the ErrorBody", async () => {
    const response = await failure(unsigned.getOwnIdDataByLoginId({ loginId: user }));
    assert.equal(response.status, 401);
    const body = response.error as ErrorBody;
    assert.equal(body.error, "missing_signature");
    assert.equal(typeof body.message, "string");
  });
});
