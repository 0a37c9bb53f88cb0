use spine::prelude::*;

#[on(event = "order.placed", codec = "protobuf")]
async fn accept(_order: serde_json::Value) {}

fn main() {}
