"""Drives the kapso-whatsapp-cloud-api client, unchanged, against the simulator.

Run by tests/fidelity.rs. Two modes:

  send    talks to the Graph API side through the library's own `base_url` setting
          and prints a JSON report of what the library made of each answer.
  verify  reads webhook bodies the simulator posted (raw bytes plus the signature
          header, one pair of files per POST) and checks them with the library's
          `verify_signature` and `normalize_webhook`; prints a JSON report.

Inputs come from the environment: SIM_BASE_URL, SIM_TOKEN, SIM_PHONE_NUMBER_ID,
SIM_APP_SECRET, SIM_WEBHOOK_DIR.
"""

import asyncio
import json
import os
import pathlib
import sys

from kapso_whatsapp import WhatsAppClient
from kapso_whatsapp.exceptions import WhatsAppAPIError
from kapso_whatsapp.webhooks import normalize_webhook, verify_signature

BASE_URL = os.environ.get("SIM_BASE_URL", "")
TOKEN = os.environ.get("SIM_TOKEN", "")
PHONE_NUMBER_ID = os.environ.get("SIM_PHONE_NUMBER_ID", "")
TO = "+1 650-555-1234"


def answer(response):
    """What the library parsed out of a send answer."""
    return {
        "messaging_product": response.messaging_product,
        "contacts": [{"input": c.input, "wa_id": c.wa_id} for c in response.contacts],
        "messages": [
            {"id": m.id, "message_status": m.message_status} for m in response.messages
        ],
    }


def failure(error):
    return {
        "class": type(error).__name__,
        "status_code": error.status_code,
        "error_code": error.error_code,
        "message": str(error),
        "retryable": error.is_retryable,
    }


async def send():
    report = {}
    async with WhatsAppClient(
        access_token=TOKEN, base_url=BASE_URL, graph_version="v21.0", max_retries=0
    ) as client:
        messages = client.messages
        report["text"] = answer(
            await messages.send_text(
                phone_number_id=PHONE_NUMBER_ID, to=TO, body="Your parcel left the depot"
            )
        )
        report["template"] = answer(
            await messages.send_template(
                phone_number_id=PHONE_NUMBER_ID,
                to=TO,
                template={
                    "name": "order_update",
                    "language": "en_US",
                    "components": [
                        {"type": "body", "parameters": [{"type": "text", "text": "A1"}]}
                    ],
                },
            )
        )
        report["image"] = answer(
            await messages.send_image(
                phone_number_id=PHONE_NUMBER_ID,
                to=TO,
                image={"link": "https://example.com/receipt.jpg", "caption": "Receipt"},
            )
        )
        report["buttons"] = answer(
            await messages.send_interactive_buttons(
                phone_number_id=PHONE_NUMBER_ID,
                to=TO,
                body_text="Confirm the delivery slot?",
                buttons=[{"id": "yes", "title": "Yes"}, {"id": "no", "title": "No"}],
            )
        )
        report["list"] = answer(
            await messages.send_interactive_list(
                phone_number_id=PHONE_NUMBER_ID,
                to=TO,
                body_text="Pick a slot",
                button_text="Slots",
                sections=[
                    {
                        "title": "Today",
                        "rows": [
                            {"id": "am", "title": "Morning", "description": "9 to 12"},
                            {"id": "pm", "title": "Afternoon"},
                        ],
                    }
                ],
            )
        )
        report["mark_read"] = await messages.mark_read(
            phone_number_id=PHONE_NUMBER_ID,
            message_id=report["text"]["messages"][0]["id"],
        )
        # The library trims buttons to three itself, so a fourth goes through its
        # generic request path, which still parses the error answer.
        try:
            await client.request(
                "POST",
                f"{PHONE_NUMBER_ID}/messages",
                json={
                    "messaging_product": "whatsapp",
                    "to": TO,
                    "type": "interactive",
                    "interactive": {
                        "type": "button",
                        "body": {"text": "Pick"},
                        "action": {
                            "buttons": [
                                {"type": "reply", "reply": {"id": f"b{i}", "title": f"B{i}"}}
                                for i in range(4)
                            ]
                        },
                    },
                },
            )
            report["four_buttons"] = {"class": None}
        except WhatsAppAPIError as error:
            report["four_buttons"] = failure(error)

    async with WhatsAppClient(
        access_token="wrong-token", base_url=BASE_URL, graph_version="v21.0", max_retries=0
    ) as client:
        try:
            await client.messages.send_text(phone_number_id=PHONE_NUMBER_ID, to=TO, body="hi")
            report["wrong_token"] = {"class": None}
        except WhatsAppAPIError as error:
            report["wrong_token"] = failure(error)
    return report


def verify():
    secret = os.environ["SIM_APP_SECRET"]
    directory = pathlib.Path(os.environ["SIM_WEBHOOK_DIR"])
    report = {"posts": 0, "verified": 0, "tampered_rejected": 0, "statuses": [], "messages": []}
    for body_path in sorted(directory.glob("*.body")):
        raw = body_path.read_bytes()
        header = body_path.with_suffix(".signature").read_text().strip()
        report["posts"] += 1
        if verify_signature(app_secret=secret, raw_body=raw, signature_header=header):
            report["verified"] += 1
        if not verify_signature(app_secret=secret, raw_body=raw + b" ", signature_header=header):
            report["tampered_rejected"] += 1
        result = normalize_webhook(raw.decode("ascii"))
        for status in result.statuses:
            report["statuses"].append(
                {
                    "id": status.id,
                    "status": status.status,
                    "recipient_id": status.recipient_id,
                    "has_pricing": status.pricing is not None,
                    "error_codes": [e.get("code") for e in (status.errors or [])],
                }
            )
        for message in result.messages:
            report["messages"].append(message)
    return report


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "send":
        report = asyncio.run(send())
    elif mode == "verify":
        report = verify()
    else:
        print(f"usage: {sys.argv[0]} send|verify", file=sys.stderr)
        return 2
    print(json.dumps(report, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
