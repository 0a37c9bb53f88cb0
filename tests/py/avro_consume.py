"""Reads a topic from the beginning with confluent-kafka's AvroDeserializer
and prints, as one JSON list, the decoded records whose `order_id` starts
with --run, once --count of them arrived (or after --timeout seconds)."""

import argparse
import json
import sys
import time
import uuid

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()

    deserializer = AvroDeserializer(SchemaRegistryClient({"url": args.registry}))
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": f"py-avro-{uuid.uuid4()}",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 10,
        }
    )
    md = consumer.list_topics(args.topic, timeout=10)
    consumer.assign([TopicPartition(args.topic, p, 0) for p in md.topics[args.topic].partitions])
    found = []
    deadline = time.time() + args.timeout
    try:
        while len(found) < args.count and time.time() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            record = deserializer(msg.value(), SerializationContext(args.topic, MessageField.VALUE))
            if str(record.get("order_id", "")).startswith(args.run):
                headers = {k: v.decode() for k, v in (msg.headers() or []) if v is not None}
                found.append({"record": record, "ce_type": headers.get("ce_type")})
    finally:
        consumer.close()
    print(json.dumps(found))
    return 0 if len(found) >= args.count else 1


if __name__ == "__main__":
    sys.exit(main())
