use spine::prelude::*;

#[derive(Deserialize, JsonSchema)]
struct Order {
    id: String,
}

#[on(topic = "orders", http(namespace = "shop"))]
async fn no_route(order: Order) {
    let _ = order.id;
}

#[on(topic = "orders", http(route = "POST /orders", publish = "no", roles = "admin", tag = "x"))]
async fn wrong_values(order: Order) {
    let _ = order.id;
}

#[on(topic = "orders", http(route = "POST /orders", namespace = "a/b"))]
async fn bad_namespace(order: Order) {
    let _ = order.id;
}

fn main() {}
