use spine::prelude::*;

#[on(event = "order.placed", topik = "orders")]
async fn accept(_order: serde_json::Value) {}

fn main() {}
