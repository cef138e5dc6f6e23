"""The AWS API emulator: moto's server, with one thing DynamoDB guarantees and moto does not.

DynamoDB applies the writes to one item one at a time, each with its condition checked against
the item as the previous write left it. moto's server answers requests on threads, and its
`update_item` (likewise put, delete) reads the item, checks the condition and writes it back
with no lock: two conditional writes that race can both pass. The delivery protocol's
guarantees rest on that atomicity (a claim, a put, a mark are each one conditional write), so
on the unmodified emulator a storm of concurrent deliveries can show two claims of one record,
or two `accepted`, that DynamoDB could never produce. Here every DynamoDB backend call that
reads or writes items holds one lock, as DynamoDB's per-item serialisation would.

    python infra/moto-server.py [moto_server's arguments]

ZOFHOOK_EMULATOR_UNLOCKED=1 leaves the calls unlocked (tests/tests/emulator.rs shows the race
with it), and ZOFHOOK_EMULATOR_SWITCH_US sets the Python thread switch interval in microseconds
(small values make a race likely instead of rare).
"""

import functools
import os
import sys
import threading

from moto.dynamodb.models import DynamoDBBackend
from moto.server import main

ITEM_CALLS = ["put_item", "update_item", "delete_item", "get_item", "query", "scan",
              "transact_write_items", "transact_get_items", "batch_get_item"]

if os.environ.get("ZOFHOOK_EMULATOR_UNLOCKED") != "1":
    lock = threading.RLock()

    def serialised(call):
        @functools.wraps(call)
        def wrapper(*args, **kwargs):
            with lock:
                return call(*args, **kwargs)
        return wrapper

    for name in ITEM_CALLS:
        if hasattr(DynamoDBBackend, name):
            setattr(DynamoDBBackend, name, serialised(getattr(DynamoDBBackend, name)))

if os.environ.get("ZOFHOOK_EMULATOR_SWITCH_US"):
    sys.setswitchinterval(int(os.environ["ZOFHOOK_EMULATOR_SWITCH_US"]) / 1e6)

if __name__ == "__main__":
    main(sys.argv[1:])
