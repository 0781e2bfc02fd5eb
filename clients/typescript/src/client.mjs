// A typed ownid-bridge client: openapi-fetch over the types that openapi-typescript generates
// from openapi/openapi.json (run.sh writes them to generated/ownid-bridge.d.ts), plus a
// middleware that signs every request the way OwnID does.
import { createHmac } from "node:crypto";
import createClient from "openapi-fetch";

/** @typedef {import("../generated/ownid-bridge.js").paths} paths */
/** @typedef {import("../generated/ownid-bridge.js").components} components */
/** @typedef {import("openapi-fetch").Client<paths>} OwnIdBridgeClient */

/**
 * Decodes the base64 shared secret from the OwnID console into the HMAC key bytes.
 * Node's base64 decoder silently skips characters outside the alphabet, so the
 * value is checked first: a typo must not turn into a different key.
 *
 * @param {string} sharedSecret
 * @returns {Buffer}
 */
export function decodeSharedSecret(sharedSecret) {
  const trimmed = sharedSecret.trim();
  if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(trimmed)) {
    throw new Error("the shared secret is not standard base64 with padding");
  }
  const key = Buffer.from(trimmed, "base64");
  if (key.length === 0) {
    throw new Error("the shared secret is empty");
  }
  return key;
}

/**
 * `ownid-signature` for a body: base64(HMAC-SHA256(key, body bytes + "." + timestamp)), with the
 * base64-DECODED shared secret as key.
 *
 * @param {Buffer} key the decoded shared secret (see decodeSharedSecret)
 * @param {Uint8Array} body the exact request body bytes that are sent
 * @param {string} timestamp the exact `ownid-timestamp` header value that is sent
 * @returns {string}
 */
export function signatureFor(key, body, timestamp) {
  return createHmac("sha256", key).update(body).update(".").update(timestamp).digest("base64");
}

/**
 * openapi-fetch middleware that adds `ownid-timestamp` (Unix milliseconds) and `ownid-signature`.
 * It signs the body read back from the final Request, so the signature covers exactly the bytes
 * that go on the wire, whatever openapi-fetch's body serializer produced.
 *
 * @param {string} sharedSecret base64, as shown in the OwnID console
 * @param {() => number} [now] clock in Unix milliseconds (tests can pass a skewed one)
 * @returns {import("openapi-fetch").Middleware}
 */
export function ownIdSignature(sharedSecret, now = Date.now) {
  const key = decodeSharedSecret(sharedSecret);
  // Strictly increasing timestamps: two identical bodies sent within one millisecond would
  // otherwise carry identical signatures, which the server's replay protection (on by default)
  // rightly refuses.
  let last = 0;
  return {
    async onRequest({ request }) {
      const body = new Uint8Array(await request.clone().arrayBuffer());
      last = Math.max(now(), last + 1);
      const timestamp = String(last);
      request.headers.set("ownid-timestamp", timestamp);
      request.headers.set("ownid-signature", signatureFor(key, body, timestamp));
      return request;
    },
  };
}

/**
 * A client for one ownid-bridge server.
 *
 * @param {object} options
 * @param {string} options.baseUrl the server's origin, e.g. http://127.0.0.1:8080 (the spec's
 *   `servers` entry `/ownid` is relative, so the base path is added here)
 * @param {string} [options.basePath] the server's `server.base_path`, `/ownid` by default
 * @param {string} [options.sharedSecret] base64 shared secret; without it requests go unsigned
 * @returns {OwnIdBridgeClient}
 */
export function createOwnIdBridgeClient({ baseUrl, basePath = "/ownid", sharedSecret }) {
  /** @type {OwnIdBridgeClient} */
  const client = createClient({ baseUrl: new URL(basePath, baseUrl).href });
  if (sharedSecret !== undefined) {
    client.use(ownIdSignature(sharedSecret));
  }
  return client;
}
