"""Prints shell assignments for scripts/schemathesis.sh from a demo's endpoints.json.

The demo's listeners are bound to 127.0.0.1, but their certificates are for
`localhost`, so URLs are rewritten to https://localhost:PORT.
"""

import json
import shlex
import sys
from urllib.parse import urlsplit


def localhost(url):
    if not url:
        return ""
    return f"https://localhost:{urlsplit(url).port}"


def main(path):
    with open(path, encoding="utf-8") as f:
        endpoints = json.load(f)
    callers = {c["name"]: c for c in endpoints["callers"]}
    values = {
        "HTTP_URL": localhost(endpoints["http"]),
        "PUBLIC_URL": localhost(endpoints.get("public")),
        "SERVER_NAME": endpoints["server_name"],
        "CA_FILE": endpoints["ca_file"],
    }
    for name, prefix in (("samr", "SAMR"), ("privacy_officer", "OFFICER")):
        values[f"{prefix}_CERT"] = callers[name]["cert"]
        values[f"{prefix}_KEY"] = callers[name]["key"]
    for key, value in values.items():
        print(f"{key}={shlex.quote(str(value))}")


if __name__ == "__main__":
    main(sys.argv[1])
