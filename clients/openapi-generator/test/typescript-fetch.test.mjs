// The typescript-fetch client OpenAPI Generator generates from the committed document (compiled
// by run.sh), against the running server: every request signed in a fetch middleware over the
// body string the client sends, as OwnID signs it.
// Environment: OWNID_BRIDGE_URL, OWNID_SHARED_SECRET, OWNID_TEST_USER (exists, no ownIdData),
// OWNID_GENERATED_TS (the compiled client's index.js).
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { createRequire } from "node:module";
import { test } from "node:test";

for (const name of ["OWNID_BRIDGE_URL", "OWNID_SHARED_SECRET", "OWNID_TEST_USER", "OWNID_GENERATED_TS"]) {
  if (!process.env[name]) throw new Error(`${name} is not set`);
}
const generated = createRequire(import.meta.url)(/** @type {string} */ (process.env.OWNID_GENERATED_TS));
const key = Buffer.from(/** @type {string} */ (process.env.OWNID_SHARED_SECRET), "base64");
const user = /** @type {string} */ (process.env.OWNID_TEST_USER);

let lastTimestamp = 0;
/** Signs the request's exact body string; timestamps strictly increase (one use per signature). */
const signer = {
  /** @param {{ url: string, init: RequestInit }} context */
  async pre(context) {
    const body = typeof context.init.body === "string" ? context.init.body : "";
    lastTimestamp = Math.max(Date.now(), lastTimestamp + 1);
    const timestamp = String(lastTimestamp);
    const signature = createHmac("sha256", key).update(body).update(".").update(timestamp).digest("base64");
    context.init.headers = { ...context.init.headers, "ownid-timestamp": timestamp, "ownid-signature": signature };
    return context;
  },
};

function api(middleware = [signer]) {
  const configuration = new generated.Configuration({
    basePath: `${process.env.OWNID_BRIDGE_URL}/ownid`,
    middleware,
  });
  return new generated.OwnIDApi(configuration);
}

test("typescript-fetch: the three operations, signed", async () => {
  const client = api();
  // A user without data: 204, which the client returns as null.
  assert.equal(await client.getOwnIDDataByLoginId({ getOwnIdDataRequest: { loginId: user } }), null);
  const data = `from typescript-fetch ${Date.now()}`;
  await client.setOwnIDDataByLoginId({ setOwnIdDataRequest: { loginId: user, ownIdData: data } });
  const got = await client.getOwnIDDataByLoginId({ getOwnIdDataRequest: { loginId: user } });
  assert.equal(got?.ownIdData, data);
  const session = await client.getSessionByLoginId({
    getSessionRequest: { loginId: user, sessionType: generated.SessionTypeParam.Browser },
  });
  assert.equal(session.token.split(".").length, 3);
  assert.ok(session.expiresAt > Date.now() / 1000);
});

test("typescript-fetch: an unknown user is 404, an unsigned request 401 with the error body", async () => {
  await assert.rejects(
    api().getSessionByLoginId({ getSessionRequest: { loginId: "nobody@example.com" } }),
    (error) => error instanceof generated.ResponseError && error.response.status === 404,
  );
  const unsigned = await api([])
    .getOwnIDDataByLoginId({ getOwnIdDataRequest: { loginId: user } })
    .then(() => assert.fail("an unsigned request was answered"), (error) => error);
  assert.ok(unsigned instanceof generated.ResponseError);
  assert.equal(unsigned.response.status, 401);
  const body = generated.ErrorBodyFromJSON(await unsigned.response.json());
  assert.equal(body.error, "missing_signature");
});
