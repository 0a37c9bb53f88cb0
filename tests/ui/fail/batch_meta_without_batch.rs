use spine::prelude::*;

#[on(topic = "orders")]
async fn save(_orders: Vec<serde_json::Value>, _metas: Vec<Meta>) {}

fn main() {}
