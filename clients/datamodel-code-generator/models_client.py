"""The pydantic models datamodel-code-generator generates from the committed document, against the
running server: request bodies are the models' own JSON (`model_dump_json(by_alias=True)`, which
keeps an unset `sessionType` as `null`, as pydantic-based clients send it), every answer is
validated by its model, and every request is signed over the exact body bytes sent.

Usage: models_client.py MODELS_FILE. Environment: OWNID_BRIDGE_URL, OWNID_SHARED_SECRET; the user
datamodel-code-generator@example.com exists without ownIdData.
"""

import base64
import hashlib
import hmac
import importlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

import pydantic

# Imported as a module of its directory: pydantic resolves the models' postponed annotations in
# the module they were defined in.
sys.path.insert(0, os.path.dirname(os.path.abspath(sys.argv[1])))
models = importlib.import_module(os.path.splitext(os.path.basename(sys.argv[1]))[0])

BASE = os.environ["OWNID_BRIDGE_URL"].rstrip("/") + "/ownid"
KEY = base64.b64decode(os.environ["OWNID_SHARED_SECRET"], validate=True)
USER = "datamodel-code-generator@example.com"
UNKNOWN = f"nobody-{uuid.uuid4()}@example.invalid"
last_timestamp = 0


def post(operation, body: bytes, signed=True):
    """POSTs the body; returns the status and the response body (errors included)."""
    global last_timestamp
    headers = {"content-type": "application/json"}
    if signed:
        # Strictly increasing: the server accepts each signature once.
        last_timestamp = max(int(time.time() * 1000), last_timestamp + 1)
        timestamp = str(last_timestamp)
        mac = hmac.new(KEY, body + b"." + timestamp.encode(), hashlib.sha256).digest()
        headers["ownid-timestamp"] = timestamp
        headers["ownid-signature"] = base64.b64encode(mac).decode()
    url = f"{BASE}/{operation}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def call(operation, model, signed=True):
    return post(operation, model.model_dump_json(by_alias=True).encode(), signed)


def parsed(model_class, body: bytes):
    """The body validated by its model, which must also hold every field the body has."""
    model = model_class.model_validate_json(body)
    assert model.model_dump(mode="json", by_alias=True) == json.loads(body), body
    return model


def main():
    get = models.GetOwnIdDataRequest(login_id=USER)
    status, body = call("getOwnIDDataByLoginId", get)
    assert (status, body) == (204, b""), (status, body)

    data = f'datamodel-code-generator|🔐|é€|"quoted"\\|{uuid.uuid4()}'
    stored = models.SetOwnIdDataRequest(login_id=USER, own_id_data=data)
    status, body = call("setOwnIDDataByLoginId", stored)
    assert (status, body) == (204, b""), (status, body)

    status, body = call("getOwnIDDataByLoginId", get)
    assert status == 200, (status, body)
    assert parsed(models.OwnIdData, body).own_id_data == data

    # sessionType is a nullable enum that lists null: a root model over the enum or None.
    browser = models.GetSessionRequest(
        login_id=USER, session_type=models.SessionTypeParam(models.SessionTypeParamEnum.browser)
    )
    unset = models.GetSessionRequest(login_id=USER)
    sent = json.loads(unset.model_dump_json(by_alias=True))
    assert sent == {"loginId": USER, "sessionType": None}, sent
    assert json.loads(browser.model_dump_json(by_alias=True))["sessionType"] == "browser"
    for request in (browser, unset):
        status, body = call("getSessionByLoginId", request)
        assert status == 200, (status, body)
        session = parsed(models.SessionToken, body)
        assert len(session.token.split(".")) == 3 and session.expires_at > time.time(), session

    for operation, request in (
        ("setOwnIDDataByLoginId", models.SetOwnIdDataRequest(login_id=UNKNOWN, own_id_data=data)),
        ("getOwnIDDataByLoginId", models.GetOwnIdDataRequest(login_id=UNKNOWN)),
        ("getSessionByLoginId", models.GetSessionRequest(login_id=UNKNOWN)),
    ):
        status, body = call(operation, request)
        assert (status, body) == (404, b""), (operation, status, body)

    status, body = call("getOwnIDDataByLoginId", get, signed=False)
    assert status == 401, (status, body)
    assert parsed(models.ErrorBody, body).error == "missing_signature", body

    # A body the models refuse (an empty login id) is what the server refuses too.
    try:
        models.GetOwnIdDataRequest(login_id="")
        raise AssertionError("the model accepted an empty login id")
    except pydantic.ValidationError:
        pass
    status, body = post("getOwnIDDataByLoginId", b'{"loginId":""}')
    assert status == 400, (status, body)
    assert parsed(models.ErrorBody, body).error == "invalid_request", body
    print(
        "   models: get 204, set 204, get 200 (OwnIdData), session 200 (SessionToken; sessionType"
        " browser, then null), unknown 404 x3, unsigned 401 (ErrorBody), empty loginId 400"
        " (ErrorBody)"
    )


if __name__ == "__main__":
    main()
