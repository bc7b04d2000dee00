#!/usr/bin/env bash
# Sends a message with 5 reply buttons to a running wasp (start one with `scripts/demo`),
# waits until it is read, and prints its history: the button-limit plugin's rewrite into a
# list, the Cloud API's wamid, and the signed status webhooks.
#
#   WASP_ADMIN_TOKEN=<the token the demo printed> examples/send-a-message.sh
set -euo pipefail
url=${WASP_URL:-http://127.0.0.1:8080}
token=${WASP_ADMIN_TOKEN:?set WASP_ADMIN_TOKEN to the admin token the demo printed}

body='{"to":"+6591234567","category":"utility","content":{"type":"interactive","interactive":{"type":"button",
  "body":{"text":"When should we deliver?"},"action":{"buttons":[
  {"type":"reply","reply":{"id":"mon","title":"Monday"}},{"type":"reply","reply":{"id":"tue","title":"Tuesday"}},
  {"type":"reply","reply":{"id":"wed","title":"Wednesday"}},{"type":"reply","reply":{"id":"thu","title":"Thursday"}},
  {"type":"reply","reply":{"id":"fri","title":"Friday"}}]}}}}'
answer=$(curl -sf -X POST "$url/v1/messages" -H "Authorization: Bearer $token" \
    -H 'Content-Type: application/json' -d "$body")
id=$(printf '%s' "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
echo "accepted: $id"

for _ in $(seq 1 60); do
    message=$(curl -sf "$url/v1/messages/$id" -H "Authorization: Bearer $token")
    status=$(printf '%s' "$message" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
    if [ "$status" = read ] || [ "$status" = failed ] || [ "$status" = rejected ]; then
        break
    fi
    sleep 0.5
done
printf '%s' "$message" | python3 -c '
import json, sys
message = json.load(sys.stdin)
print("status:", message["status"], " wamid:", message["wamid"])
upstream = message.get("upstream") or {}
print("sent upstream as:", upstream.get("content", {}).get("interactive", {}).get("type"),
      "rewritten by", upstream.get("rewritten_by"))
for entry in message["history"]:
    print("  %s  %-10s %s" % (entry["at"], entry["status"], entry["cause"]))
'
