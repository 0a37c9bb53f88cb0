// Batch handlers: every supported shape compiles, stays a plain async fn, and
// registers with its batch settings.
use spine::prelude::*;

#[derive(Deserialize)]
struct Order {
    #[allow(dead_code)]
    id: String,
}

struct Db;

#[on(topic = "orders", batch(max = 500, linger = "20ms"))]
async fn save(_orders: Vec<Order>, _metas: Vec<Meta>) -> Result<(), HandlerError> {
    Ok(())
}

#[on(topic = "audit", batch(max = 10, linger = "1s"))]
async fn every_extractor(
    _orders: std::vec::Vec<Order>,
    _metas: Vec<Meta>,
    _raw: Vec<Raw>,
    _db: State<Db>,
) -> Vec<Reply> {
    vec![]
}

#[on(topic = "bare", batch(max = 1))]
async fn no_linger(_orders: Vec<serde_json::Value>) {}

fn main() {
    let [save, every, bare] = spine::handlers![save, every_extractor, no_linger];
    assert_eq!(save.payload, "Order", "one message's payload type");
    assert_eq!(
        save.batching(),
        Some((500, std::time::Duration::from_millis(20)))
    );
    assert_eq!(every.batching().unwrap().1, std::time::Duration::from_secs(1));
    assert_eq!(bare.batching().unwrap().1, std::time::Duration::ZERO);
    let _future = no_linger(Vec::new());
}
