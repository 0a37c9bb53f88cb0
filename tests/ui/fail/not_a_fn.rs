use spine::prelude::*;

#[on(event = "order.placed")]
struct Accept;

fn main() {}
