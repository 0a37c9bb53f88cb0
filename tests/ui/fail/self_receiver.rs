use spine::prelude::*;

struct Service;

impl Service {
    #[on(event = "order.placed")]
    async fn accept(&self, _order: serde_json::Value) {}
}

fn main() {}
