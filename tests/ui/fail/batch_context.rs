use spine::prelude::*;

#[on(topic = "orders", batch(max = 500, linger = "20ms"))]
async fn save(_orders: Vec<serde_json::Value>, _ctx: Context) {}

fn main() {}
