use spine::prelude::*;

#[derive(Deserialize, JsonSchema)]
struct Order {
    id: String,
}

#[derive(Serialize)]
struct Accepted {
    id: String,
}

#[on(topic = "orders", replies(Accepted), http = "POST /orders")]
async fn accept(order: Order) -> Reply {
    Reply::to("accepted", "order.accepted", Accepted { id: order.id })
}

fn main() {}
