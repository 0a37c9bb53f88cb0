use spine::prelude::*;

#[on(event = order_placed, topic = 3)]
async fn accept(_order: serde_json::Value) {}

fn main() {}
