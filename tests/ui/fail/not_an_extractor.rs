use spine::prelude::*;

#[on(event = "order.placed")]
async fn accept(_order: serde_json::Value, _retries: u32) {}

fn main() {}
