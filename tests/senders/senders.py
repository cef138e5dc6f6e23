#!/usr/bin/env python3
"""The senders' own signing libraries, for the conformance tests (tests/tests/senders.rs): each
command signs or verifies one body, read from a file, with Stripe's, Svix's or the Standard
Webhooks library, or as GitHub's and Shopify's documentation compute it.

    senders.py stripe-sign SECRET TIMESTAMP BODY        -> prints the Stripe-Signature value
    senders.py stripe-verify SECRET HEADER BODY         -> exit 0 if stripe accepts it, exit 3 (and
                                                           "stripe: rejected: …") if its own
                                                           verification error refuses it
    senders.py svix-sign SECRET MSG_ID TIMESTAMP BODY   -> prints the webhook-signature value
    senders.py svix-verify SECRET MSG_ID TIMESTAMP SIGNATURE BODY
    senders.py sw-sign / sw-verify                      -> the same with `standardwebhooks`
    senders.py shopify-sign SECRET BODY                 -> prints X-Shopify-Hmac-Sha256 (base64)
"""
import base64
import datetime
import hashlib
import hmac
import sys


def read(path):
    with open(path, "rb") as f:
        return f.read()


def when(timestamp):
    return datetime.datetime.fromtimestamp(int(timestamp), tz=datetime.timezone.utc)


def main():
    command, *args = sys.argv[1:]
    if command == "stripe-sign":
        from stripe import WebhookSignature
        secret, timestamp, body = args
        print(WebhookSignature.generate_signature_header(read(body).decode(), secret, int(timestamp)))
    elif command == "stripe-verify":
        from stripe import SignatureVerificationError, WebhookSignature
        secret, header, body = args
        try:
            WebhookSignature.verify_header(read(body), header, secret, tolerance=300)
        except SignatureVerificationError as e:
            rejected("stripe", e)
        print("stripe: valid")
    elif command in ("svix-sign", "sw-sign"):
        secret, msg_id, timestamp, body = args
        hook, _ = webhook(command, secret)
        print(hook.sign(msg_id, when(timestamp), read(body).decode()))
    elif command in ("svix-verify", "sw-verify"):
        secret, msg_id, timestamp, signature, body = args
        headers = {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}
        library = command.split("-")[0]
        hook, refusal = webhook(command, secret)
        try:
            hook.verify(read(body), headers)
        except refusal as e:
            rejected(library, e)
        print(library + ": valid")
    elif command == "shopify-sign":
        # shopify.dev "Verify a webhook": base64 of HMAC-SHA256 over the raw body, keyed by the secret.
        secret, body = args
        digest = hmac.new(secret.encode("utf-8"), read(body), hashlib.sha256).digest()
        print(base64.b64encode(digest).decode())
    else:
        raise SystemExit(f"unknown command {command}")


def rejected(library, error):
    """The library's own verification error refused it: exit 3, so that any other failure (an
    import error, a crash: exit 1) is not taken for a refusal."""
    print(f"{library}: rejected: {error}")
    raise SystemExit(3)


def webhook(command, secret):
    """The library's Webhook and the error its verify raises for a bad signature."""
    if command.startswith("svix"):
        from svix.webhooks import Webhook, WebhookVerificationError
    else:
        from standardwebhooks.webhooks import Webhook, WebhookVerificationError
    return Webhook(secret), WebhookVerificationError


main()
