use spine::prelude::*;

#[derive(Deserialize, JsonSchema)]
struct Order {
    id: String,
}

#[on(topic = "orders", http = "GET /orders")]
async fn by_get(order: Order) {
    let _ = order.id;
}

#[on(topic = "orders", http = "POST orders")]
async fn no_slash(order: Order) {
    let _ = order.id;
}

#[on(topic = "orders", http = "POST /orders/{a}/{b}")]
async fn two_params(order: Order) {
    let _ = order.id;
}

fn main() {}
