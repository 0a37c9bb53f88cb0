use spine::prelude::*;

#[derive(Deserialize, JsonSchema)]
struct Order {
    id: String,
}

#[derive(Serialize, JsonSchema)]
struct Accepted {
    id: String,
}

#[on(event = "order.placed", topic = "orders", replies(Accepted), http = "POST /orders")]
async fn accept(order: Order) -> Reply {
    Reply::to("accepted", "order.accepted", Accepted { id: order.id })
}

#[on(
    event = "order.cancelled",
    topic = "orders",
    http(
        route = "PUT /orders/{key}",
        namespace = "shop",
        summary = "Cancel an order",
        roles = ["orders.write", "admin"],
        publish = false
    )
)]
async fn cancel(order: Order, meta: Meta) {
    let _ = (order.id, meta.key_str().map(str::len), meta.transport == spine::Transport::Http);
}

fn main() {
    let d = accept::__spine_descriptor();
    assert_eq!(d.http.as_ref().map(|h| h.route), Some("POST /orders"));
    assert!(d.json_schema.is_some());
    assert!(d.reply_json_schemas[0].1.is_some());
    let c = cancel::__spine_descriptor();
    let h = c.http.unwrap();
    assert_eq!((h.namespace, h.publish, h.roles.len()), (Some("shop"), Some(false), 2));
}
