"""Schemathesis hooks for ownid-bridge: signs every generated request (loaded via SCHEMATHESIS_HOOKS).

Signing happens at the transport level. The auth provider below makes schemathesis hand our
`requests` auth object (ownid_signing.OwnIdSigner) to `requests`, which calls it on the prepared
request after the body has been serialized to bytes exactly once; the signer reads those bytes
and adds `ownid-timestamp` (Unix ms, taken at send time) and `ownid-signature`. No later step
re-serializes the body, so the signature always covers the bytes on the wire.

Because the credentials come from an auth provider, schemathesis knows they are explicit: its
`ignored_auth` check then re-sends successful requests without the signature (and with a wrong
one) and expects the server to refuse them, and for negative tests that deliberately drop a
security header it leaves the request unsigned.

Environment: OWNID_SHARED_SECRET (base64, required); OWNID_TEST_OUT (optional): every response
schemathesis gets is appended to $OWNID_TEST_OUT/schemathesis-responses.jsonl for summarize.py.
"""

from __future__ import annotations

import hmac
import json
import os
import sys
import threading

import schemathesis
from schemathesis import AuthContext, Case, CheckContext, Response
from schemathesis.core.failures import Failure, Severity
from schemathesis.core.parameters import ParameterLocation

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ownid_signing  # noqa: E402

ownid_signing.self_test()
SIGNER = ownid_signing.OwnIdSigner(os.environ["OWNID_SHARED_SECRET"])


def security_headers_negated(case: Case) -> bool:
    """Whether this is a negative case whose headers were made schema-invalid on purpose.

    The only header parameters of this API are its two security headers, so such a case tests
    a missing or malformed `ownid-signature`/`ownid-timestamp`: signing it would repair it and
    turn the intended 401 into a success. (`_meta` is read directly because `Case.meta`
    revalidates the case, which is only settled once the request is prepared.)
    """
    meta = case._meta
    if meta is None or not meta.generation.mode.is_negative:
        return False
    header = meta.components.get(ParameterLocation.HEADER)
    return header is not None and header.mode.is_negative


# refresh_interval=None: no caching, `get` runs for every case. retry_on=[]: a 401 is an answer
# to check, never a reason to re-sign and replay the request.
@schemathesis.auth(refresh_interval=None, retry_on=[])
class OwnIdSignatureAuth:
    """Attaches SIGNER as the case's `requests` auth, so the request is signed at send time."""

    def get(self, case: Case, context: AuthContext) -> ownid_signing.OwnIdSigner | None:
        # None: no credentials for this case; schemathesis then treats it as unauthenticated.
        return None if security_headers_negated(case) else SIGNER

    def set(self, case: Case, data: ownid_signing.OwnIdSigner, context: AuthContext) -> None:
        case._auth = data


_OUT = os.environ.get("OWNID_TEST_OUT")
_LOG_PATH = os.path.join(_OUT, "schemathesis-responses.jsonl") if _OUT else None
_LOG_LOCK = threading.Lock()


def carries_valid_signature(response: Response) -> bool:
    """Whether the request as sent carries a signature by our key over its exact body bytes."""
    request = response.request
    timestamp = request.headers.get(ownid_signing.TIMESTAMP_HEADER)
    signature = request.headers.get(ownid_signing.SIGNATURE_HEADER)
    if not timestamp or not signature:
        return False
    body = ownid_signing.body_bytes(request.body)
    expected = ownid_signing.sign(SIGNER.key, body, timestamp)
    return hmac.compare_digest(expected, signature)


@schemathesis.hook
def after_call(context, case: Case, response: Response) -> None:
    if _LOG_PATH is None:
        return
    meta = case._meta
    phase = meta.phase.name.value if meta is not None else None
    mode = meta.generation.mode.value if meta is not None else None
    record = {
        "operation": case.operation.label,
        "phase": phase,
        "mode": mode,
        "status": response.status_code,
        "signed": carries_valid_signature(response),
        "unsigned_on_purpose": security_headers_negated(case),
        "elapsed": response.elapsed,
    }
    with _LOG_LOCK, open(_LOG_PATH, "a", encoding="utf-8") as log:
        log.write(json.dumps(record) + "\n")


@schemathesis.check
def signed_requests_accepted(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """A request that carries our valid signature must never be answered 401.

    Together with the 401 ratio in summarize.py this keeps a broken signer from turning the run
    into a vacuous stream of 401s.
    """
    if response.status_code == 401 and carries_valid_signature(response):
        raise Failure(
            operation=case.operation.label,
            title="Correctly signed request rejected with 401",
            message=(
                "The request carried a valid ownid-signature over its exact body bytes and a "
                f"fresh ownid-timestamp, yet the server answered 401: {response.text[:300]}"
            ),
            severity=Severity.CRITICAL,
        )
    return None
