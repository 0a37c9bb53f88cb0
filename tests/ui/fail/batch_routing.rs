use spine::prelude::*;

// A batch is a slice of one topic's partition: it needs its topic, takes
// every event there, and cannot fan out or serve HTTP.
#[on(event = "order.placed", batch(max = 500), fan_out)]
async fn without_topic(_orders: Vec<serde_json::Value>) {}

#[on(topic = "orders", http = "POST /orders", batch(max = 500))]
async fn over_http(_orders: Vec<serde_json::Value>) {}

fn main() {}
