// Every supported handler shape compiles, stays callable as a plain async fn,
// and registers.
use spine::prelude::*;

#[derive(Deserialize)]
struct Order {
    id: String,
}

struct Db;

#[on(event = "order.placed", topic = "orders")]
async fn unit(_o: Order) {}

#[on(event = "a", topic = "orders")]
async fn all_extractors(_o: Order, _m: Meta, _c: Context, _s: State<Db>, _r: Raw) -> Reply {
    Reply::to("out", "done", 1)
}

#[on(event = "b", topic = "orders")]
async fn fallible(o: Order) -> Result<Reply, HandlerError> {
    Ok(Reply::to("out", "done", o.id))
}

#[on(event = "c", topic = "orders")]
async fn many(_o: Order) -> Result<Vec<Reply>, std::io::Error> {
    Ok(vec![])
}

#[on(event = "d", topic = "orders")]
async fn maybe(_o: Order) -> Option<Reply> {
    None
}

#[on(event = "e", topic = "orders")]
async fn unit_result(_o: serde_json::Value) -> Result<(), HandlerError> {
    Ok(())
}

#[on(topic = "orders")]
async fn whole_topic(_o: serde_json::Value) {}

#[on(event = "everywhere")]
async fn any_topic(_o: serde_json::Value) {}

#[on(event = "fan", topic = "orders", fan_out)]
async fn fan_one(_o: serde_json::Value) {}

#[on(event = "fan", topic = "orders", fan_out)]
pub(crate) async fn fan_two(_o: serde_json::Value) {}

mod nested {
    use spine::prelude::*;
    #[on(event = "nested", topic = "orders")]
    pub async fn inner(_o: Option<String>) {}
}

#[derive(Serialize)]
struct Accepted {
    id: String,
}

#[on(event = "r", topic = "orders", replies(Accepted, serde_json::Value))]
async fn declares_replies(o: Order) -> Reply {
    Reply::to("out", "accepted", Accepted { id: o.id })
}

fn main() {
    let handlers = spine::handlers![
        unit,
        all_extractors,
        fallible,
        many,
        maybe,
        unit_result,
        whole_topic,
        any_topic,
        fan_one,
        fan_two,
        nested::inner,
    ];
    assert_eq!(handlers.len(), 11);
    assert_eq!(handlers[1].payload, "Order");
    assert_eq!(handlers[1].topic.as_deref(), Some("orders"));
    assert_eq!(handlers[6].event, None);
    assert!(handlers[8].fan_out);
    let [declared] = spine::handlers![declares_replies];
    assert_eq!(declared.replies.len(), 2);
    assert_eq!(declared.replies[0].0, "Accepted");
    assert!(declared.replies[0].1.is_none(), "not an AvroSchema type");
    // Still a plain async fn.
    let _future = fallible(Order { id: "o-1".into() });
}
