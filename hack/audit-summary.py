#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The machine-controller-manager-provider-local authors
# SPDX-License-Identifier: Apache-2.0
"""Who sent which requests: counts an API server audit log (hack/cluster-up.sh with
AUDIT_DIR set) by client, verb and resource, per phase.

    hack/audit-summary.py "$AUDIT_DIR/target-audit.log" [--per N] [--min X]

Phases are cut where the benchmark's own client starts a new burst of machine
creates or deletes (its user agent is "mcm-bench"); without such requests the
whole log is one phase. --per divides the counts (by the number of machines).
"""

import argparse
import collections
import json
import sys


def client(event):
    """A short name for who sent the request: the user agent's program, or the user."""
    agent = event.get("userAgent", "")
    program = agent.split("/")[0].split(" ")[0]
    user = event.get("user", {}).get("username", "")
    if user.startswith("system:node:"):
        return "node"
    if user.startswith("system:serviceaccount:kube-system:"):
        return "kcm:" + user.rsplit(":", 1)[1]
    return program or user


def what(event):
    ref = event.get("objectRef", {})
    resource = ref.get("resource") or event.get("requestURI", "?").split("?")[0]
    if ref.get("subresource"):
        resource += "/" + ref["subresource"]
    return event.get("verb", "?"), resource


def phases(events):
    """Splits at the benchmark's first machine create and first machine delete."""
    cuts = []
    for i, e in enumerate(events):
        if client(e) != "mcm-bench" or e.get("objectRef", {}).get("resource") != "machines":
            continue
        verb = e.get("verb")
        if verb in ("create", "delete") and (not cuts or cuts[-1][1] != verb):
            cuts.append((i, verb))
    if not cuts:
        return [("all", events)]
    out = []
    for n, (i, verb) in enumerate(cuts):
        end = cuts[n + 1][0] if n + 1 < len(cuts) else len(events)
        out.append((f"{verb} phase {n // 2 + 1}", events[i:end]))
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("log")
    p.add_argument("--per", type=float, default=1.0, help="divide counts by this")
    p.add_argument("--min", type=float, default=0.05, help="hide rows below this")
    args = p.parse_args()
    events = []
    with open(args.log) as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    events.sort(key=lambda e: e.get("stageTimestamp", ""))
    for name, part in phases(events):
        counts = collections.Counter((client(e),) + what(e) for e in part)
        by_client = collections.Counter()
        for (c, _, _), n in counts.items():
            by_client[c] += n
        span = f"{part[0].get('stageTimestamp', '?')} .. {part[-1].get('stageTimestamp', '?')}"
        print(f"## {name}: {len(part) / args.per:.2f} requests ({span})")
        for c, total in by_client.most_common():
            if total / args.per < args.min:
                continue
            print(f"{c:45s} {total / args.per:8.2f}")
            rows = [(k, n) for k, n in counts.items() if k[0] == c]
            for (_, verb, res), n in sorted(rows, key=lambda r: -r[1]):
                if n / args.per >= args.min:
                    print(f"    {verb:18s} {res:36s} {n / args.per:8.2f}")
        print()


if __name__ == "__main__":
    sys.exit(main())
