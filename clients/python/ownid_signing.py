"""OwnID request signing (SPEC §2), shared by the schemathesis hooks and the preflight checks.

    ownid-timestamp = Unix time in milliseconds, as decimal digits
    ownid-signature = base64(HMAC-SHA256(key = base64_decode(shared_secret),
                                         data = body_bytes + b"." + timestamp))

`OwnIdSigner` is a `requests` auth object. `requests` calls it on the *prepared* request, after
it has serialized the body to bytes, so the signature covers exactly the bytes that go on the
wire: nothing can re-serialize the body after signing. It only reads `request.body`; it never
re-encodes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time

import requests
import requests.auth

SIGNATURE_HEADER = "ownid-signature"
TIMESTAMP_HEADER = "ownid-timestamp"

# SPEC §2 test vector.
VECTOR_SECRET = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
VECTOR_BODY = b'{"loginId":"user@example.com","ownIdData":"ownid==abc"}'
VECTOR_TIMESTAMP = "1717000000000"
VECTOR_SIGNATURE = "zvTkk3T4pxfM6rvszpQr+jyynM6K7UFBtjZKE0yBfbE="
VECTOR_WRONG_SIGNATURE = "hvmna+t69s1lgS1wlb9+9sf/f820pMVIPLxcbMrHS4E="  # secret's text as key


def decode_secret(shared_secret: str) -> bytes:
    """The HMAC key: the base64-DECODED shared secret (its bytes, not its text)."""
    key = base64.b64decode(shared_secret.strip(), validate=True)
    if not key:
        raise ValueError("the shared secret decodes to no bytes")
    return key


def sign(key: bytes, body: bytes, timestamp: str) -> str:
    """base64(HMAC-SHA256(key, body + b"." + timestamp)), standard alphabet with padding."""
    mac = hmac.new(key, body + b"." + timestamp.encode("ascii"), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode("ascii")


def now_ms() -> str:
    return str(time.time_ns() // 1_000_000)


def body_bytes(body: object) -> bytes:
    """The prepared request's body as bytes; `requests` leaves it `None` when there is none."""
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        # `requests` keeps a `data=str` body as str and http.client encodes it as ISO-8859-1
        # ("latin-1") when it sends it, so those are the bytes on the wire.
        return body.encode("iso-8859-1")
    raise TypeError(f"cannot sign a streamed request body ({type(body).__name__})")


class OwnIdSigner(requests.auth.AuthBase):
    """Signs every request it is attached to over the exact bytes of its prepared body.

    Each signed request is counted, and the status of its response is recorded in `statuses`
    (thread-safe), so a caller can tell whether signed requests were accepted.
    """

    def __init__(self, shared_secret: str) -> None:
        self.key = decode_secret(shared_secret)
        self.lock = threading.Lock()
        self.signed = 0
        self.last_timestamp = 0
        self.statuses: dict[int, int] = {}

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        data = body_bytes(request.body)
        with self.lock:
            # Strictly increasing timestamps: two identical bodies sent within one millisecond
            # would otherwise carry identical signatures, which a server with
            # `ownid.replay_protection` rightly refuses as a replay.
            now = int(now_ms())
            self.last_timestamp = max(now, self.last_timestamp + 1)
            timestamp = str(self.last_timestamp)
            self.signed += 1
        request.headers[TIMESTAMP_HEADER] = timestamp
        request.headers[SIGNATURE_HEADER] = sign(self.key, data, timestamp)
        request.register_hook("response", self._record)
        return request

    def _record(self, response: requests.Response, *args: object, **kwargs: object) -> None:
        with self.lock:
            self.statuses[response.status_code] = self.statuses.get(response.status_code, 0) + 1


def self_test() -> None:
    """Checks `sign` against SPEC §2's test vector, including the classic wrong-key mistake."""
    got = sign(decode_secret(VECTOR_SECRET), VECTOR_BODY, VECTOR_TIMESTAMP)
    if got != VECTOR_SIGNATURE:
        raise AssertionError(f"signing test vector: got {got}, expected {VECTOR_SIGNATURE}")
    wrong = sign(VECTOR_SECRET.encode("ascii"), VECTOR_BODY, VECTOR_TIMESTAMP)
    if wrong != VECTOR_WRONG_SIGNATURE:
        raise AssertionError(f"signing test vector (text key): got {wrong}")
