use spine::prelude::*;

#[on(event = "order.placed")]
fn accept(_order: serde_json::Value) {}

fn main() {}
