"""Exercises the client that openapi-python-client generates from openapi/openapi.json.

run.sh generates the package `ownid_bridge_client` into a build directory and runs

    python generated_client.py GENERATED_DIR

with OWNID_BRIDGE_URL and OWNID_SHARED_SECRET set. Requests are signed by an httpx event hook on
the generated client's own httpx.Client (`Client(httpx_args={"event_hooks": ...})`): httpx calls a
request hook with the final `httpx.Request`, whose `content` holds the exact body bytes that go on
the wire, just before sending it. The HMAC itself is ownid_signing.sign, the signer the
schemathesis hooks use.

The login id python-client@example.com must exist on the server (scripts/test.sh adds it);
OWNID_PYTHON_CLIENT_USER overrides it. Prints one line per check and a closing
"N passed, N failed" line; exits 1 if any check failed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable

import httpx

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import ownid_signing  # noqa: E402


class OwnIdHttpxSigner:
    """An httpx request event hook that adds `ownid-timestamp` and `ownid-signature`.

    It signs `request.content`, the body bytes httpx built from the generated client's JSON
    (`httpx.Request` encodes `json=` to bytes when it is created, so `content` is always set for
    these requests). Timestamps are strictly increasing so that two identical bodies sent within
    one millisecond still get different signatures (the server refuses a replayed one).
    """

    def __init__(self, shared_secret: str) -> None:
        self.key = ownid_signing.decode_secret(shared_secret)
        self.lock = threading.Lock()
        self.last = 0
        self.signed: list[bytes] = []

    def __call__(self, request: httpx.Request) -> None:
        body = request.content
        with self.lock:
            self.last = max(time.time_ns() // 1_000_000, self.last + 1)
            timestamp = str(self.last)
        request.headers[ownid_signing.TIMESTAMP_HEADER] = timestamp
        request.headers[ownid_signing.SIGNATURE_HEADER] = ownid_signing.sign(
            self.key, body, timestamp
        )
        self.signed.append(body)


def main() -> int:
    if len(sys.argv) != 2:
        print(
            "usage: generated_client.py GENERATED_DIR (the directory holding ownid_bridge_client/)",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, os.path.abspath(sys.argv[1]))

    from ownid_bridge_client import Client
    from ownid_bridge_client.api.own_id import (
        get_own_id_data_by_login_id,
        get_session_by_login_id,
        set_own_id_data_by_login_id,
    )
    from ownid_bridge_client.models import (
        ErrorBody,
        GetOwnIdDataRequest,
        GetSessionRequest,
        OwnIdData,
        SessionToken,
        SetOwnIdDataRequest,
    )

    # `sessionType` is a nullable enum that lists null (OpenAPI 3.0.3); openapi-python-client
    # 0.29 renders it as a union of enum classes named after the schema's parts, the first of
    # which holds the values.
    from ownid_bridge_client.models import SessionTypeParamType1 as SessionTypeParam

    ownid_signing.self_test()
    base_url = os.environ["OWNID_BRIDGE_URL"].rstrip("/") + "/ownid"
    user = os.environ.get("OWNID_PYTHON_CLIENT_USER", "python-client@example.com")
    unknown = f"no-such-user-{uuid.uuid4().hex}@example.com"
    # Multi-byte UTF-8 and JSON escapes: the signature must cover the bytes actually sent.
    data = f'python-client|🔐𝄞|é€|"quoted"\\|{uuid.uuid4().hex}'

    signer = OwnIdHttpxSigner(os.environ["OWNID_SHARED_SECRET"])
    # The generated operations annotate `client: AuthenticatedClient` (openapi-python-client's
    # stand-in for any security scheme: a bearer token in one header). OwnID's signature is not a
    # token, so the plain Client is used, with the signing hook on its httpx client.
    client = Client(
        base_url=base_url,
        raise_on_unexpected_status=True,
        httpx_args={"event_hooks": {"request": [signer]}},
    )
    unsigned = Client(base_url=base_url, raise_on_unexpected_status=True)

    results: list[tuple[str, str | None]] = []

    def check(name: str, body: Callable[[], None]) -> None:
        try:
            body()
        except Exception as error:  # a failed check, reported with its cause
            results.append((name, f"{type(error).__name__}: {error}"))
            print(f"not ok - {name}: {type(error).__name__}: {error}")
        else:
            results.append((name, None))
            print(f"ok - {name}")

    def expect(condition: bool, message: str) -> None:
        if not condition:
            raise AssertionError(message)

    def set_existing() -> None:
        response = set_own_id_data_by_login_id.sync_detailed(
            client=client, body=SetOwnIdDataRequest(login_id=user, own_id_data=data)
        )
        expect(response.status_code == 204, f"status {response.status_code}: {response.content!r}")
        sent = signer.signed[-1]
        expect(
            json.loads(sent) == {"loginId": user, "ownIdData": data},
            f"the hook signed {sent!r}, not the JSON body",
        )

    def get_existing() -> None:
        response = get_own_id_data_by_login_id.sync_detailed(
            client=client, body=GetOwnIdDataRequest(login_id=user)
        )
        expect(response.status_code == 200, f"status {response.status_code}: {response.content!r}")
        expect(isinstance(response.parsed, OwnIdData), f"parsed as {response.parsed!r}")
        expect(
            response.parsed.own_id_data == data,
            f"ownIdData {response.parsed.own_id_data!r}, expected {data!r}",
        )

    def session_existing() -> None:
        response = get_session_by_login_id.sync_detailed(
            client=client,
            body=GetSessionRequest(login_id=user, session_type=SessionTypeParam.BROWSER),
        )
        expect(response.status_code == 200, f"status {response.status_code}: {response.content!r}")
        expect(
            b'"sessionType":"browser"' in signer.signed[-1], f"signed body {signer.signed[-1]!r}"
        )
        token = response.parsed
        expect(isinstance(token, SessionToken), f"parsed as {token!r}")
        expect(token.token.count(".") == 2, f"token {token.token!r} is not a JWT")
        expect(token.expires_at > time.time(), f"expiresAt {token.expires_at} is not in the future")

    def unknown_user(module, body) -> Callable[[], None]:
        def run() -> None:
            response = module.sync_detailed(client=client, body=body)
            expect(
                response.status_code == 404, f"status {response.status_code}: {response.content!r}"
            )
            expect(response.content == b"", f"body {response.content!r}")

        return run

    def unsigned_refused() -> None:
        response = get_own_id_data_by_login_id.sync_detailed(
            client=unsigned, body=GetOwnIdDataRequest(login_id=user)
        )
        expect(response.status_code == 401, f"status {response.status_code}: {response.content!r}")
        expect(isinstance(response.parsed, ErrorBody), f"parsed as {response.parsed!r}")
        expect(response.parsed.error == "missing_signature", f"error {response.parsed.error!r}")

    check("setOwnIDDataByLoginId, existing user: 204", set_existing)
    check("getOwnIDDataByLoginId, existing user: 200 with the value just set", get_existing)
    check(
        "getSessionByLoginId, existing user, sessionType browser: 200 with a token",
        session_existing,
    )
    check(
        "setOwnIDDataByLoginId, unknown user: 404",
        unknown_user(
            set_own_id_data_by_login_id, SetOwnIdDataRequest(login_id=unknown, own_id_data=data)
        ),
    )
    check(
        "getOwnIDDataByLoginId, unknown user: 404",
        unknown_user(get_own_id_data_by_login_id, GetOwnIdDataRequest(login_id=unknown)),
    )
    check(
        "getSessionByLoginId, unknown user: 404",
        unknown_user(get_session_by_login_id, GetSessionRequest(login_id=unknown)),
    )
    check("unsigned request (no hook): 401 ErrorBody missing_signature", unsigned_refused)
    client.get_httpx_client().close()
    unsigned.get_httpx_client().close()

    failed = sum(1 for _, error in results if error is not None)
    print(f"generated client: {len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
