"""Checks run before schemathesis: the served spec, and that our signing is accepted.

Usage: preflight.py COMMITTED_OPENAPI_JSON COMMITTED_OPENAPI_YAML
Environment: OWNID_BRIDGE_URL (e.g. http://127.0.0.1:43121), OWNID_SHARED_SECRET (base64).

1. The document served at $OWNID_BRIDGE_URL/openapi.json is byte-identical to the committed
   openapi.json, and the committed YAML and JSON describe the same document.
2. The signer passes SPEC §2's test vector.
3. Live requests to getOwnIDDataByLoginId for a login id no user has:
   - signed by the same OwnIdSigner the schemathesis hooks use  -> 404 (a bad signature is 401),
   - unsigned                                                   -> 401 missing_signature,
   - signed with the secret's text instead of its decoded bytes -> 401 invalid_signature.
   So a broken signer, or a server that does not check signatures, stops the run here instead
   of making the fuzzing vacuous.
Exits 1 on the first failed check.
"""

from __future__ import annotations

import json
import os
import sys
import uuid

import requests
import yaml

import ownid_signing

TIMEOUT = 10  # seconds per request


def fail(message: str) -> None:
    print(f"preflight: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def ok(message: str) -> None:
    print(f"preflight: ok   {message}")


def first_difference(a: bytes, b: bytes) -> str:
    for index, (x, y) in enumerate(zip(a, b)):
        if x != y:
            line = a.count(b"\n", 0, index) + 1
            return f"first difference at byte {index} (line {line})"
    return f"one is a prefix of the other ({len(a)} vs {len(b)} bytes)"


def check_served_spec(base_url: str, json_path: str, yaml_path: str) -> None:
    with open(json_path, "rb") as f:
        committed = f.read()
    url = f"{base_url}/openapi.json"
    response = requests.get(url, timeout=TIMEOUT)
    if response.status_code != 200:
        fail(f"GET {url} answered {response.status_code}")
    if response.content != committed:
        fail(
            f"GET {url} ({len(response.content)} bytes) is not byte-identical to {json_path} "
            f"({len(committed)} bytes): {first_difference(response.content, committed)}"
        )
    ok(f"GET {url} is byte-identical to {json_path} ({len(committed)} bytes)")

    with open(yaml_path, "rb") as f:
        from_yaml = yaml.safe_load(f)
    if from_yaml != json.loads(committed):
        fail(f"{yaml_path} and {json_path} describe different documents")
    ok(f"{yaml_path} and {json_path} describe the same document")


def check_signing(base_url: str, secret: str) -> None:
    ownid_signing.self_test()
    ok("signer reproduces SPEC §2's test vector")

    url = f"{base_url}/ownid/getOwnIDDataByLoginId"
    body = {"loginId": f"preflight-{uuid.uuid4()}@example.invalid"}
    signer = ownid_signing.OwnIdSigner(secret)

    def show(response: requests.Response) -> str:
        return f"{response.status_code} {response.text[:300]!r}"

    # Signed exactly as schemathesis' requests are: same auth object, body serialized by requests.
    signed = requests.post(url, json=body, auth=signer, timeout=TIMEOUT)
    if signed.status_code != 404:
        fail(
            f"signed POST {url} for an unknown login id answered {show(signed)}, expected 404 "
            f"(401 means the signature is wrong: is OWNID_SHARED_SECRET the server's secret?)"
        )
    ok(f"signed POST {url} for an unknown login id: 404")

    unsigned = requests.post(url, json=body, timeout=TIMEOUT)
    if unsigned.status_code != 401 or unsigned.json().get("error") != "missing_signature":
        fail(f"unsigned POST {url} answered {show(unsigned)}, expected 401 missing_signature")
    ok(f"unsigned POST {url}: 401 missing_signature")

    data = json.dumps(body).encode()
    timestamp = ownid_signing.now_ms()
    text_key = secret.strip().encode("ascii")  # the classic mistake: the secret's text as key
    headers = {
        "content-type": "application/json; charset=utf-8",
        ownid_signing.TIMESTAMP_HEADER: timestamp,
        ownid_signing.SIGNATURE_HEADER: ownid_signing.sign(text_key, data, timestamp),
    }
    wrong = requests.post(url, data=data, headers=headers, timeout=TIMEOUT)
    if wrong.status_code != 401 or wrong.json().get("error") != "invalid_signature":
        fail(f"wrongly signed POST {url} answered {show(wrong)}, expected 401 invalid_signature")
    ok(f"POST {url} signed with the secret's text as key: 401 invalid_signature")


def main() -> None:
    if len(sys.argv) != 3:
        fail("usage: preflight.py COMMITTED_OPENAPI_JSON COMMITTED_OPENAPI_YAML")
    base_url = os.environ["OWNID_BRIDGE_URL"].rstrip("/")
    secret = os.environ["OWNID_SHARED_SECRET"]
    check_served_spec(base_url, sys.argv[1], sys.argv[2])
    check_signing(base_url, secret)


if __name__ == "__main__":
    main()
