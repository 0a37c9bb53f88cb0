use spine::prelude::*;

#[derive(Deserialize)]
struct Order {
    id: String,
}

#[on(event = "order.placed", topic = "orders", codec = "avro")]
async fn accept(order: Order) {
    let _ = order.id;
}

fn main() {}
