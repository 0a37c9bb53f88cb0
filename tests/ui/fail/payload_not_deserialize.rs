use spine::prelude::*;

struct Order {
    id: String,
}

#[on(event = "order.placed")]
async fn accept(order: Order) {
    let _ = order.id;
}

fn main() {}
