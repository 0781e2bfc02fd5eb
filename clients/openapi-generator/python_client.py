"""The Python client OpenAPI Generator generates from the committed document, against the running
server: every request signed over the exact body bytes the client sends, by a wrapper around the
generated client's urllib3 pool (its `rest_client.pool_manager`), as OwnID signs it.

Usage: python_client.py GENERATED_DIR. Environment: OWNID_BRIDGE_URL, OWNID_SHARED_SECRET; the
user openapi-generator-py@example.com exists without ownIdData.
"""

import base64
import hashlib
import hmac
import os
import sys
import time

sys.path.insert(0, sys.argv[1])

from ownid_bridge_generated import ApiClient, Configuration, OwnIDApi  # noqa: E402
from ownid_bridge_generated.exceptions import (  # noqa: E402
    NotFoundException,
    UnauthorizedException,
)
from ownid_bridge_generated.models import (  # noqa: E402
    GetOwnIdDataRequest,
    GetSessionRequest,
    SessionTypeParam,
    SetOwnIdDataRequest,
)

KEY = base64.b64decode(os.environ["OWNID_SHARED_SECRET"])
USER = "openapi-generator-py@example.com"


class SigningPool:
    """The generated client's pool, with both signature headers added to each request."""

    def __init__(self, pool):
        self.pool = pool
        self.last = 0

    def request(self, method, url, body=None, headers=None, **kwargs):
        data = body.encode() if isinstance(body, str) else (body or b"")
        # Strictly increasing: the server accepts each signature once.
        self.last = max(int(time.time() * 1000), self.last + 1)
        timestamp = str(self.last)
        mac = hmac.new(KEY, data + b"." + timestamp.encode(), hashlib.sha256).digest()
        headers = dict(headers or {})
        headers["ownid-timestamp"] = timestamp
        headers["ownid-signature"] = base64.b64encode(mac).decode()
        return self.pool.request(method, url, body=body, headers=headers, **kwargs)

    def __getattr__(self, name):
        return getattr(self.pool, name)


def client(signed=True):
    api_client = ApiClient(Configuration(host=os.environ["OWNID_BRIDGE_URL"].rstrip("/") + "/ownid"))
    if signed:
        api_client.rest_client.pool_manager = SigningPool(api_client.rest_client.pool_manager)
    return OwnIDApi(api_client)


def main():
    api = client()
    # A user without data: 204, no body.
    response = api.get_own_id_data_by_login_id_with_http_info(GetOwnIdDataRequest(login_id=USER))
    assert response.status_code == 204, response.status_code
    data = f"from the OpenAPI Generator python client {time.time()}"
    response = api.set_own_id_data_by_login_id_with_http_info(
        SetOwnIdDataRequest(login_id=USER, own_id_data=data)
    )
    assert response.status_code == 204, response.status_code
    got = api.get_own_id_data_by_login_id(GetOwnIdDataRequest(login_id=USER))
    assert got.own_id_data == data, got
    session = api.get_session_by_login_id(
        GetSessionRequest(login_id=USER, session_type=SessionTypeParam.BROWSER)
    )
    assert len(session.token.split(".")) == 3 and session.expires_at > time.time(), session
    # The session type left unset, as pydantic models leave it.
    api.get_session_by_login_id(GetSessionRequest(login_id=USER))
    try:
        api.get_session_by_login_id(GetSessionRequest(login_id="nobody@example.com"))
        raise AssertionError("an unknown user got a session")
    except NotFoundException:
        pass
    try:
        client(signed=False).get_own_id_data_by_login_id(GetOwnIdDataRequest(login_id=USER))
        raise AssertionError("an unsigned request was answered")
    except UnauthorizedException as error:
        assert '"missing_signature"' in error.body, error.body
    print("   python: get 204, set 204, get 200, session 200 (twice), unknown 404, unsigned 401")


if __name__ == "__main__":
    main()
