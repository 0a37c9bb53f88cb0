use spine::prelude::*;

#[on(event = "order.placed", event = "order.paid")]
async fn accept(_order: serde_json::Value) {}

fn main() {}
