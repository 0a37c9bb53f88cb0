use spine::prelude::*;

#[on(event = "order.placed")]
async fn accept(_order: serde_json::Value) -> String {
    "accepted".to_owned()
}

fn main() {}
