"""Reads a topic from the beginning with confluent-kafka (an independent client)
and prints, as JSON, the first record whose payload contains --match:
{"key": ..., "headers": {...}, "value": <payload JSON>}. Exits 1 if none is
found within --timeout seconds."""

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, TopicPartition


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--match", required=True)
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()

    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"py-reader-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    md = consumer.list_topics(args.topic, timeout=10)
    partitions = md.topics[args.topic].partitions
    consumer.assign([TopicPartition(args.topic, p, 0) for p in partitions])
    deadline = time.time() + args.timeout
    try:
        while time.time() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            value = msg.value() or b""
            if args.match.encode() not in value:
                continue
            headers = {k: (v.decode() if v is not None else None) for k, v in (msg.headers() or [])}
            print(
                json.dumps(
                    {
                        "key": msg.key().decode() if msg.key() else None,
                        "headers": headers,
                        "value": json.loads(value),
                    }
                )
            )
            return 0
    finally:
        consumer.close()
    print(f"no record containing {args.match!r} in {args.topic}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
