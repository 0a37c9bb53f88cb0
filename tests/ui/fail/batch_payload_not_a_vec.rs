use spine::prelude::*;

#[on(topic = "orders", batch(max = 500, linger = "20ms"))]
async fn save(_order: serde_json::Value, _meta: Meta) {}

fn main() {}
