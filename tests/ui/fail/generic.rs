use spine::prelude::*;

#[on(event = "order.placed")]
async fn accept<T: serde::de::DeserializeOwned>(_order: T) {}

fn main() {}
