"""Summarizes the responses schemathesis got and refuses a run that was mostly 401s.

Usage: summarize.py RESPONSES_JSONL SUMMARY_JSON
RESPONSES_JSONL is written by hooks.py (one line per response to a generated request; the
`ignored_auth` check's deliberately unsigned probes are not in it). Fails (exit 1) when:
- no response was recorded (the hooks did not run, or nothing was tested),
- more than MAX_401_RATIO of the responses to requests meant to be signed were 401 (the run would
  prove little: most requests never got past signature verification). Requests left unsigned on
  purpose (negative tests of the security headers, see hooks.py) are expected to get 401 and
  are left out of this ratio: they are 9-17% of all requests, which would put a limit on all
  responses within reach of ordinary variation. The ratio over all responses is reported too.
- any request that carried a valid signature was answered 401 (hooks.py's
  `signed_requests_accepted` check reports those inside schemathesis too).
"""

from __future__ import annotations

import collections
import json
import sys

MAX_401_RATIO = 0.20


def main() -> None:
    responses_path, summary_path = sys.argv[1], sys.argv[2]
    records = []
    try:
        with open(responses_path, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        pass

    total = len(records)
    statuses = collections.Counter(r["status"] for r in records)
    by_operation: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    by_phase: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in records:
        by_operation[r["operation"]][r["status"]] += 1
        by_phase[f"{r['phase']}/{r['mode']}"][r["status"]] += 1
    unauthorized = statuses.get(401, 0)
    signed_unauthorized = sum(1 for r in records if r["status"] == 401 and r["signed"])
    on_purpose = [r for r in records if r["unsigned_on_purpose"]]
    meant_signed = [r for r in records if not r["unsigned_on_purpose"]]
    meant_signed_unauthorized = sum(1 for r in meant_signed if r["status"] == 401)
    ratio_all = unauthorized / total if total else 1.0
    ratio = meant_signed_unauthorized / len(meant_signed) if meant_signed else 1.0

    def counts(counter: collections.Counter) -> dict[str, int]:
        return {str(status): counter[status] for status in sorted(counter)}

    summary = {
        "requests": total,
        "statuses": counts(statuses),
        "by_operation": {op: counts(c) for op, c in sorted(by_operation.items())},
        "by_phase": {phase: counts(c) for phase, c in sorted(by_phase.items())},
        "ratio_401_all": round(ratio_all, 4),
        "unsigned_on_purpose": len(on_purpose),
        "unsigned_on_purpose_answered_401": sum(1 for r in on_purpose if r["status"] == 401),
        "meant_signed": len(meant_signed),
        "meant_signed_answered_401": meant_signed_unauthorized,
        "ratio_401_meant_signed": round(ratio, 4),
        "correctly_signed_answered_401": signed_unauthorized,
    }
    with open(summary_path, "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")

    print(f"summary: {total} responses to generated requests; statuses {summary['statuses']}")
    for operation, c in summary["by_operation"].items():
        print(f"summary:   {operation}: {c}")
    print(
        f"summary: 401: {unauthorized} of {total} ({ratio_all:.1%}); "
        f"{len(on_purpose)} requests were left unsigned on purpose (negative tests of the "
        f"security headers), {summary['unsigned_on_purpose_answered_401']} of them got 401"
    )
    print(
        f"summary: requests meant to be signed: {len(meant_signed)}, answered 401: "
        f"{meant_signed_unauthorized} ({ratio:.1%}, limit {MAX_401_RATIO:.0%}); "
        f"correctly signed requests answered 401: {signed_unauthorized} (limit 0)"
    )

    problems = []
    if total == 0:
        problems.append(f"no responses were recorded in {responses_path}: did the hooks load?")
    if total and ratio > MAX_401_RATIO:
        problems.append(
            f"{ratio:.1%} of the requests meant to be signed were answered 401 "
            f"(limit {MAX_401_RATIO:.0%}): they never got past signature verification"
        )
    if signed_unauthorized:
        problems.append(f"{signed_unauthorized} correctly signed requests were answered 401")
    if not any(200 <= status < 300 for status in statuses):
        # Not a failure: the contract allows a database without users. But then the 200/204
        # schemas and schemathesis' ignored_auth check (which probes successful requests
        # without a signature) were never exercised.
        print(
            "summary: WARNING: no 2xx response: no generated login id exists in the database. "
            "Add the spec's example user (ownid-bridge users add alice@example.com) to the "
            "server's database before the run to exercise the 200/204 responses and "
            "schemathesis' ignored_auth check."
        )
    for problem in problems:
        print(f"summary: FAIL: {problem}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
