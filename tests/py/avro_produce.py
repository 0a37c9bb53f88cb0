"""Produces Avro orders with confluent-kafka's AvroSerializer and its
SchemaRegistryClient (a third-party Confluent serializer), with a CloudEvents
`ce_type` header. Prints the number produced."""

import argparse
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

SCHEMA = """
{"type": "record", "name": "OrderPlaced", "namespace": "shop", "fields": [
  {"name": "order_id", "type": "string"},
  {"name": "customer", "type": "string"},
  {"name": "amount_cents", "type": "long"}
]}
"""


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--registry", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--run", required=True)
    ap.add_argument("--count", type=int, default=10)
    args = ap.parse_args()

    registry = SchemaRegistryClient({"url": args.registry})
    serializer = AvroSerializer(registry, SCHEMA)
    producer = Producer({"bootstrap.servers": args.bootstrap})
    for i in range(args.count):
        order = {"order_id": f"{args.run}-{i}", "customer": f"py-{i % 3}", "amount_cents": 1000 + i}
        value = serializer(order, SerializationContext(args.topic, MessageField.VALUE))
        producer.produce(args.topic, key=order["order_id"], value=value, headers=[("ce_type", b"order.placed")])
    if producer.flush(30) != 0:
        print("not everything was delivered", file=sys.stderr)
        return 1
    print(args.count)
    return 0


if __name__ == "__main__":
    sys.exit(main())
