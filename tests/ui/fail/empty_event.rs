use spine::prelude::*;

#[on(event = "", topic = "orders")]
async fn accept(_order: serde_json::Value) {}

fn main() {}
