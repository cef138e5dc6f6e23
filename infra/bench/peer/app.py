"""The cold-start peer (make bench): the receiver as a user would write it in Python with boto3
and Powertools for AWS Lambda's idempotency utility, doing the same work as ours:

- init: read the webhook secret from Secrets Manager, build the DynamoDB and SQS clients;
- per delivery: verify the Standard Webhooks signature (hmac + compare_digest), parse the event,
  record its id once in DynamoDB (Powertools' conditional put, then its COMPLETED update), and
  send it to SQS; a repeat is answered from the stored result.
"""

import base64
import hashlib
import hmac
import json
import os
import time

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)

_stored = boto3.client("secretsmanager").get_secret_value(SecretId=os.environ["SECRET_ARN"])
_secret = json.loads(_stored["SecretString"])["current"]
KEY = base64.b64decode(_secret.removeprefix("whsec_"))
QUEUE_URL = os.environ["QUEUE_URL"]
SQS = boto3.client("sqs")
PERSISTENCE = DynamoDBPersistenceLayer(table_name=os.environ["IDEMPOTENCY_TABLE"])
CONFIG = IdempotencyConfig(event_key_jmespath="id", expires_after_seconds=7 * 24 * 3600)
TOLERANCE = 300


@idempotent_function(data_keyword_argument="event", persistence_store=PERSISTENCE, config=CONFIG)
def accept(event):
    SQS.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps(event))
    return {"status": "accepted", "id": event["id"]}


def reply(status, body):
    return {"statusCode": status, "headers": {"content-type": "application/json"},
            "body": json.dumps(body)}


def handler(request, context):
    CONFIG.register_lambda_context(context)
    headers = {k.lower(): v for k, v in (request.get("headers") or {}).items()}
    body = request.get("body") or ""
    raw = base64.b64decode(body) if request.get("isBase64Encoded") else body.encode()
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not msg_id or not stamp.isdigit() or abs(time.time() - int(stamp)) > TOLERANCE:
        return reply(401, {"error": "invalid_signature"})
    signed = f"{msg_id}.{stamp}.".encode() + raw
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    offered = [s.removeprefix("v1,") for s in headers.get("webhook-signature", "").split()]
    if not any(hmac.compare_digest(s, expected) for s in offered):
        return reply(401, {"error": "invalid_signature"})
    try:
        event = json.loads(raw)
    except ValueError:
        return reply(400, {"error": "invalid_event"})
    return reply(200, accept(event=event))
