"""Parses Prometheus text (stdin) with prometheus_client's own parser, an
independent implementation of the format, and prints the families as JSON:
{family: {"type": ..., "help": ..., "samples": [{"name", "labels", "value"}]}}.
Exits 1 (with the parser's error) if the text does not parse."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families


def main() -> int:
    text = sys.stdin.read()
    try:
        families = {
            f.name: {
                "type": f.type,
                "help": f.documentation,
                "samples": [
                    {"name": s.name, "labels": s.labels, "value": s.value}
                    for s in f.samples
                ],
            }
            for f in text_string_to_metric_families(text)
        }
    except Exception as e:  # the parser's own error, for the test to show
        print(f"not Prometheus text: {e}", file=sys.stderr)
        return 1
    json.dump(families, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
