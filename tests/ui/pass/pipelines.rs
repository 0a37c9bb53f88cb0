// Every supported pipeline shape compiles, its steps stay callable as plain
// functions, and it registers like a handler.
use spine::prelude::*;

#[derive(Deserialize)]
pub struct Order {
    pub id: String,
}

#[derive(Serialize)]
pub struct Checked {
    pub id: String,
}

pub struct Db;

#[pipeline(event = "order.placed", topic = "orders", max_concurrent = 4, args(limit = 10, tag = "x"))]
mod check {
    use super::*;

    pub fn sync_plain(o: Order, #[arg] limit: u32) -> String {
        format!("{}-{limit}", o.id)
    }

    pub async fn async_option(id: String, _m: Meta, _db: State<Db>) -> Option<String> {
        Some(id)
    }

    pub fn result(id: String, #[arg] tag: String) -> Result<String, std::io::Error> {
        Ok(format!("{id}{tag}"))
    }

    pub async fn result_option(id: String, _c: Context) -> anyhow_like::Result<Option<Checked>> {
        Ok(Some(Checked { id }))
    }

    #[publish(topic = "orders.checked", event = "order.checked")]
    pub fn publish(c: Checked, _db: State<Db>, _m: Meta) -> Checked {
        c
    }

    pub fn reply(c: Checked) -> Reply {
        Reply::to("orders.done", "order.done", c)
    }
}

#[pipeline(topic = "audit")]
mod ends_by_publishing {
    #[publish(topic = "audit.copy", event = "audited")]
    pub async fn copy(v: serde_json::Value) -> Result<serde_json::Value, spine::HandlerError> {
        Ok(v)
    }
}

pub mod anyhow_like {
    pub type Result<T> = std::result::Result<T, std::io::Error>;
}

fn main() {
    let _ = check::sync_plain(Order { id: "o".into() }, 1);
    let routes = spine::handlers![check, ends_by_publishing];
    assert_eq!(routes.len(), 2);
}
