use spine::prelude::*;

#[derive(Deserialize)]
struct Order {
    id: String,
}

#[on(event = "order.placed", topic = "orders", http = "POST /orders")]
async fn accept(order: Order) {
    let _ = order.id;
}

fn main() {}
